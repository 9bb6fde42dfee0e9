import t from 'tap';
import fc from 'fast-check';
import { effectiveDstPort, effectiveSrcPort, flowHash, flowKeyHash, tupleHash } from '../../src/flow/key.js';
import { createInnerPacket, IP_PROTO, type InnerPacket } from '../../src/packet/types.js';

interface Tuple {
  protocol: number;
  src: number[];
  dst: number[];
  srcPort: number;
  dstPort: number;
}

const word = fc.integer({ min: 0, max: 0xffff_ffff });
const v4 = word.map((a) => [0, 0, 0xffff, a]);
const v6 = fc.tuple(word, word, word, word);
const port = fc.integer({ min: 0, max: 0xffff });

/** Arbitrary flows of both families; ICMP echo carries its identifier in both ports, as the decoder does. */
const tupleArb: fc.Arbitrary<Tuple> = fc
  .record({
    family: fc.constantFrom(4, 6),
    protocol: fc.constantFrom(IP_PROTO.TCP, IP_PROTO.UDP, IP_PROTO.ICMP, IP_PROTO.ICMPV6, 47, 50, 132),
    a4: fc.tuple(v4, v4),
    a6: fc.tuple(v6, v6),
    srcPort: port,
    dstPort: port,
  })
  .map(({ family, protocol, a4, a6, srcPort, dstPort }) => {
    const [src, dst] = family === 4 ? a4 : a6;
    if (protocol === IP_PROTO.ICMP || protocol === IP_PROTO.ICMPV6) return { protocol, src, dst, srcPort, dstPort: srcPort };
    if (protocol !== IP_PROTO.TCP && protocol !== IP_PROTO.UDP) return { protocol, src, dst, srcPort: 0, dstPort: 0 };
    return { protocol, src, dst, srcPort, dstPort };
  });

function packet(tu: Tuple, reversed = false): InnerPacket {
  const p = createInnerPacket();
  p.protocol = tu.protocol;
  p.ipVersion = tu.src[2] === 0xffff && tu.src[0] === 0 && tu.src[1] === 0 ? 4 : 6;
  p.src.set(reversed ? tu.dst : tu.src);
  p.dst.set(reversed ? tu.src : tu.dst);
  p.srcPort = reversed ? tu.dstPort : tu.srcPort;
  p.dstPort = reversed ? tu.srcPort : tu.dstPort;
  return p;
}

const V4 = (a: number, b: number, c: number, d: number): number[] => [0, 0, 0xffff, ((a << 24) | (b << 16) | (c << 8) | d) >>> 0];

t.test('both directions of any IPv4 or IPv6 flow hash to the same value, for any endpoint id and seed', async (t) => {
  fc.assert(
    fc.property(tupleArb, word, word, word, (tu, hi, lo, seed) => {
      const fwd = flowHash(packet(tu), hi, lo, seed);
      const rev = flowHash(packet(tu, true), hi, lo, seed);
      return fwd === rev && Number.isInteger(fwd) && fwd >= 0 && fwd <= 0xffff_ffff;
    }),
    { numRuns: 5000 },
  );
  t.pass('symmetric for 5000 arbitrary flows');
});

t.test('flowHash is flowKeyHash over the packet key', async (t) => {
  fc.assert(
    fc.property(tupleArb, word, word, word, (tu, hi, lo, seed) => {
      const p = packet(tu);
      return flowHash(p, hi, lo, seed) === flowKeyHash(hi, lo, p.ipVersion, tu.protocol, tu.src, tu.srcPort, tu.dst, tu.dstPort, seed);
    }),
  );
  t.pass();
});

t.test('the GWLB endpoint id is part of the key: tenants with identical 5-tuples hash apart', async (t) => {
  // Overlapping VPCs: the same 10.0.0.5 → 10.0.0.9:443 connection behind two GWLB endpoints.
  const tu: Tuple = { protocol: IP_PROTO.TCP, src: V4(10, 0, 0, 5), dst: V4(10, 0, 0, 9), srcPort: 40000, dstPort: 443 };
  const a = flowHash(packet(tu), 0xa1b2c3d4, 0xe5f60718, 7);
  const b = flowHash(packet(tu), 0x12345678, 0x9abcdef0, 7);
  t.not(a, b, 'two endpoints, same 5-tuple');
  t.equal(flowHash(packet(tu, true), 0x12345678, 0x9abcdef0, 7), b, 'still symmetric per endpoint');
  t.not(flowHash(packet(tu), 0xa1b2c3d4, 0xe5f60719, 7), a, 'the low half counts');
  t.not(flowHash(packet(tu), 0xa1b2c3d5, 0xe5f60718, 7), a, 'the high half counts');
  t.not(flowHash(packet(tu), 0xe5f60718, 0xa1b2c3d4, 7), a, 'halves swapped is another endpoint');
  t.not(flowHash(packet(tu), 0, 0, 7), a, 'no endpoint option (0, 0) differs from an endpoint');
  // Any single-bit change of the 64-bit id moves the hash (full avalanche of the final mix).
  let moved = 0;
  for (let bit = 0; bit < 64; bit++) {
    const hi = bit < 32 ? (0xa1b2c3d4 ^ (1 << bit)) >>> 0 : 0xa1b2c3d4;
    const lo = bit >= 32 ? (0xe5f60718 ^ (1 << (bit - 32))) >>> 0 : 0xe5f60718;
    if (flowHash(packet(tu), hi, lo, 7) !== a) moved++;
  }
  t.equal(moved, 64, 'every bit of the endpoint id changes the hash');
});

t.test('the IP version is part of the key: IPv6 between IPv4-mapped addresses is not the IPv4 flow', async (t) => {
  const tu: Tuple = { protocol: IP_PROTO.UDP, src: V4(10, 0, 0, 5), dst: V4(10, 0, 0, 9), srcPort: 5353, dstPort: 53 };
  const v4p = packet(tu);
  const v6p = packet(tu);
  v6p.ipVersion = 6; // ::ffff:10.0.0.5 → ::ffff:10.0.0.9 inside an IPv6 header: the same address words
  t.same([...v6p.src], [...v4p.src]);
  t.not(flowHash(v6p, 0, 0, 1), flowHash(v4p, 0, 0, 1));
});

t.test('tupleHash (the 5-tuple hash a GWLB-like balancer uses) is symmetric and ignores tenants', async (t) => {
  fc.assert(
    fc.property(tupleArb, word, (tu, seed) => tupleHash(tu.protocol, tu.src, tu.srcPort, tu.dst, tu.dstPort, seed) === tupleHash(tu.protocol, tu.dst, tu.dstPort, tu.src, tu.srcPort, seed)),
  );
  t.pass();
});

t.test('the protocol, each port and each address word are part of the key', async (t) => {
  const base: Tuple = { protocol: IP_PROTO.TCP, src: V4(10, 0, 0, 1), dst: V4(10, 0, 0, 2), srcPort: 40000, dstPort: 443 };
  const h = flowHash(packet(base), 0, 0);
  t.not(flowHash(packet({ ...base, protocol: IP_PROTO.UDP }), 0, 0), h, 'UDP differs from TCP on the same tuple');
  t.not(flowHash(packet({ ...base, srcPort: 40001 }), 0, 0), h, 'source port');
  t.not(flowHash(packet({ ...base, dstPort: 444 }), 0, 0), h, 'destination port');
  t.not(flowHash(packet({ ...base, dst: V4(10, 0, 0, 3) }), 0, 0), h, 'destination address');
  // The two ports swapped with the addresses kept is a different flow, not the reverse direction.
  t.not(flowHash(packet({ ...base, srcPort: 443, dstPort: 40000 }), 0, 0), h, 'ports swapped alone');
  for (let w = 0; w < 4; w++) {
    const src = [0x20010db8, 0, 0, 1];
    const other = src.slice();
    other[w] = (other[w] as number) ^ 0x100;
    const a = flowHash(packet({ ...base, src, dst: [0x20010db8, 0, 0, 2] }), 0, 0);
    const b = flowHash(packet({ ...base, src: other, dst: [0x20010db8, 0, 0, 2] }), 0, 0);
    t.not(a, b, `IPv6 address word ${w}`);
  }
});

t.test('the seed changes the hash', async (t) => {
  const p = packet({ protocol: IP_PROTO.UDP, src: V4(192, 0, 2, 1), dst: V4(198, 51, 100, 7), srcPort: 5353, dstPort: 53 });
  t.not(flowHash(p, 0, 0, 1), flowHash(p, 0, 0, 2));
  t.not(flowHash(p, 0, 0, 0), flowHash(p, 0, 0, 0xdeadbeef));
});

t.test('ICMP echo request and reply share a key; a different identifier is a different flow', async (t) => {
  const req = packet({ protocol: IP_PROTO.ICMP, src: V4(10, 1, 1, 1), dst: V4(8, 8, 8, 8), srcPort: 0x1234, dstPort: 0x1234 });
  const rep = packet({ protocol: IP_PROTO.ICMP, src: V4(8, 8, 8, 8), dst: V4(10, 1, 1, 1), srcPort: 0x1234, dstPort: 0x1234 });
  const other = packet({ protocol: IP_PROTO.ICMP, src: V4(10, 1, 1, 1), dst: V4(8, 8, 8, 8), srcPort: 0x1235, dstPort: 0x1235 });
  t.equal(flowHash(rep, 0, 0), flowHash(req, 0, 0));
  t.not(flowHash(other, 0, 0), flowHash(req, 0, 0));
});

t.test('a later fragment is keyed by its 3-tuple: its ports are ignored', async (t) => {
  const tu: Tuple = { protocol: IP_PROTO.UDP, src: V4(10, 0, 0, 1), dst: V4(10, 0, 0, 2), srcPort: 0, dstPort: 0 };
  const threeTuple = flowHash(packet(tu), 0, 0);
  const frag = packet({ ...tu, srcPort: 999, dstPort: 53 }); // garbage a decoder might leave; must not matter
  frag.isFragment = true;
  frag.isLaterFragment = true;
  t.equal(effectiveSrcPort(frag), 0);
  t.equal(effectiveDstPort(frag), 0);
  t.equal(flowHash(frag, 0, 0), threeTuple);
  const first = packet({ ...tu, srcPort: 999, dstPort: 53 });
  first.isFragment = true; // the first fragment has the transport header: keyed by its 5-tuple
  t.equal(effectiveSrcPort(first), 999);
  t.not(flowHash(first, 0, 0), threeTuple);
});

t.test('flows whose two endpoints are equal do not all hash alike (commutative sum, not XOR)', async (t) => {
  const seen = new Set<number>();
  for (let i = 1; i <= 1000; i++) {
    const a = V4(10, 0, i >> 8, i & 0xff);
    seen.add(flowHash(packet({ protocol: IP_PROTO.UDP, src: a, dst: a, srcPort: 7, dstPort: 7 }), 0, 0));
  }
  t.ok(seen.size > 990, `${seen.size} distinct hashes for 1000 self-flows`);
});

t.test('structured flows spread evenly over the low bits the table indexes with', async (t) => {
  // 65,536 flows differing only in sequential client ports or sequential client addresses: the patterns
  // real traffic and scanners produce. With 1024 buckets the mean load is 64; a uniform hash keeps the fullest
  // bucket well under twice that (Poisson(64) exceeds 110 with probability ~1e-7 per bucket).
  const BUCKETS = 1024;
  for (const vary of ['port', 'address'] as const) {
    const counts = new Uint32Array(BUCKETS);
    const all = new Set<number>();
    for (let i = 0; i < 65536; i++) {
      const tu: Tuple =
        vary === 'port'
          ? { protocol: IP_PROTO.TCP, src: V4(10, 0, 0, 1), dst: V4(10, 0, 0, 2), srcPort: i, dstPort: 443 }
          : { protocol: IP_PROTO.TCP, src: V4(10, 1, i >> 8, i & 0xff), dst: V4(10, 0, 0, 2), srcPort: 50000, dstPort: 443 };
      const h = flowHash(packet(tu), 0, 0, 0x5eed);
      all.add(h);
      counts[h & (BUCKETS - 1)]!++;
    }
    const max = Math.max(...counts);
    t.ok(max < 110, `sequential ${vary === 'port' ? 'ports' : 'addresses'}: fullest bucket holds ${max} (mean 64)`);
    // Expected 32-bit collisions among 65,536 values: n²/2³³ ≈ 0.5.
    t.ok(all.size >= 65536 - 5, `sequential ${vary === 'port' ? 'ports' : 'addresses'}: ${65536 - all.size} full-hash collisions`);
  }
});
