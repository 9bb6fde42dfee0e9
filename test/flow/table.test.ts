import t from 'tap';
import fc from 'fast-check';
import {
  FLOW_CLASS,
  FLOW_IDLE_CLOSED_MS,
  FLOW_IDLE_OTHER_MS,
  FLOW_IDLE_TCP_MS,
  FLOW_TABLE_ERROR,
  FlowTable,
  FlowTableError,
  GENEVE_MAX_HEADER_BYTES,
} from '../../src/flow/table.js';
import { flowHash } from '../../src/flow/key.js';
import { decodeGeneve, encodeGeneve } from '../../src/geneve/codec.js';
import { createGeneveHeader } from '../../src/geneve/types.js';
import { createInnerPacket, IP_PROTO, type InnerPacket } from '../../src/packet/types.js';
import { ACTION, DIRECTION, type FlowAccess } from '../../src/pipeline/stage.js';

interface Tuple {
  protocol: number;
  src: number[];
  dst: number[];
  srcPort: number;
  dstPort: number;
}

const V4 = (a: number, b: number, c: number, d: number): number[] => [0, 0, 0xffff, ((a << 24) | (b << 16) | (c << 8) | d) >>> 0];

function packet(tu: Tuple, reversed = false, ipLength = 60): InnerPacket {
  const p = createInnerPacket();
  p.protocol = tu.protocol;
  p.ipVersion = tu.src[0] === 0 && tu.src[1] === 0 && tu.src[2] === 0xffff ? 4 : 6;
  p.src.set(reversed ? tu.dst : tu.src);
  p.dst.set(reversed ? tu.src : tu.dst);
  p.srcPort = reversed ? tu.dstPort : tu.srcPort;
  p.dstPort = reversed ? tu.srcPort : tu.dstPort;
  p.ipLength = ipLength;
  return p;
}

function tcp(i: number): Tuple {
  return { protocol: IP_PROTO.TCP, src: V4(10, 0, (i >> 8) & 0xff, i & 0xff), dst: V4(192, 0, 2, 1), srcPort: 1024 + (i % 60000), dstPort: 443 };
}

function udp(i: number): Tuple {
  return { protocol: IP_PROTO.UDP, src: V4(10, 1, (i >> 8) & 0xff, i & 0xff), dst: V4(192, 0, 2, 53), srcPort: 1024 + (i % 60000), dstPort: 53 };
}

const word = fc.integer({ min: 0, max: 0xffff_ffff });
const v4Addr = word.map((a) => [0, 0, 0xffff, a]);
const v6Addr = fc.tuple(word, word, word, word);
const portArb = fc.integer({ min: 0, max: 0xffff });
const tupleArb: fc.Arbitrary<Tuple> = fc
  .record({
    six: fc.boolean(),
    protocol: fc.constantFrom(IP_PROTO.TCP, IP_PROTO.UDP, IP_PROTO.ICMP, IP_PROTO.ICMPV6, 47),
    a4: fc.tuple(v4Addr, v4Addr),
    a6: fc.tuple(v6Addr, v6Addr),
    srcPort: portArb,
    dstPort: portArb,
  })
  .map(({ six, protocol, a4, a6, srcPort, dstPort }) => {
    const [src, dst] = six ? a6 : a4;
    if (protocol === IP_PROTO.ICMP || protocol === IP_PROTO.ICMPV6) return { protocol, src, dst, srcPort, dstPort: srcPort };
    if (protocol === 47) return { protocol, src, dst, srcPort: 0, dstPort: 0 };
    return { protocol, src, dst, srcPort, dstPort };
  });

/** A tuple whose reverse is a different key (a flow with equal endpoints has no distinguishable direction). */
function directional(tu: Tuple): boolean {
  return !(tu.src.every((w, i) => w === tu.dst[i]) && tu.srcPort === tu.dstPort);
}

t.test('defaults are GWLB idle timeouts and a 10 s closed timeout', async (t) => {
  const ft = new FlowTable({ maxFlows: 10 });
  t.equal(ft.tcpIdleMs, 350_000);
  t.equal(ft.otherIdleMs, 120_000);
  t.equal(ft.closedIdleMs, 10_000);
  t.equal(FLOW_IDLE_TCP_MS, 350_000);
  t.equal(FLOW_IDLE_OTHER_MS, 120_000);
  t.equal(FLOW_IDLE_CLOSED_MS, 10_000);
  t.equal(ft.headerTemplates, 0);
  t.equal(ft.capacity, 10, 'initial capacity is clamped to maxFlows');
});

t.test('options out of range are rejected with FLOW_ERR_OPTIONS', async (t) => {
  const bad = [
    { maxFlows: 0 },
    { maxFlows: 1.5 },
    { maxFlows: 10, tcpIdleMs: Number.NaN },
    { maxFlows: 10, otherIdleMs: 0 },
    { maxFlows: 10, closedIdleMs: 500 },
    { maxFlows: 10, maxHeaderTemplates: 0 },
    { maxFlows: 10, maxHeaderTemplates: 1.5 },
    { maxFlows: 10, initialCapacity: 0 },
  ];
  for (const opts of bad) {
    t.throws(() => new FlowTable(opts), { name: 'FlowTableError', code: FLOW_TABLE_ERROR.OPTIONS }, JSON.stringify(opts));
  }
});

t.test('a new flow starts with the packet source as initiator, no verdict and zeroed fields', async (t) => {
  const ft = new FlowTable({ maxFlows: 4 });
  const tu = tcp(1);
  const f = ft.lookupOrCreate(packet(tu), 0, 0, 1000);
  t.ok(ft.created);
  t.equal(ft.direction, DIRECTION.TO_SERVER);
  t.equal(ft.size, 1);
  t.equal(ft.creations, 1);
  t.equal(ft.protocolOf(f), IP_PROTO.TCP);
  t.equal(ft.initiatorPortOf(f), tu.srcPort);
  t.equal(ft.responderPortOf(f), tu.dstPort);
  t.equal(ft.action[f], ACTION.NONE);
  t.equal(ft.ruleId[f], -1);
  t.equal(ft.tcpState[f], 0);
  t.equal(ft.flags[f], 0);
  t.equal(ft.flowId[f], 1);
  t.equal(ft.createdMsOf(f), 1000);
  t.equal(ft.headerLength(f), 0);
  t.equal(ft.classOf(f), FLOW_CLASS.TCP);
  const out = createInnerPacket();
  ft.keyInto(f, out);
  t.same([...out.src], tu.src);
  t.same([...out.dst], tu.dst);
  t.equal(out.ipVersion, 4);
  t.equal(out.srcPort, tu.srcPort);
  t.equal(out.dstPort, tu.dstPort);
});

t.test('lookups from either direction find the same flow with the right direction', async (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(tupleArb.filter(directional), { minLength: 1, maxLength: 40, size: 'max', selector: (tu) => JSON.stringify(tu) }), fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }), (tuples, firstReversed) => {
      const ft = new FlowTable({ maxFlows: 1000, initialCapacity: 2, seed: 7 });
      const idx: number[] = [];
      // Create each flow from a random side: that side is the initiator.
      tuples.forEach((tu, i) => {
        const rev = firstReversed[i] as boolean;
        idx.push(ft.lookupOrCreate(packet(tu, rev), 0, 0, i));
        if (!ft.created || ft.direction !== DIRECTION.TO_SERVER) throw new Error('not created');
      });
      tuples.forEach((tu, i) => {
        const rev = firstReversed[i] as boolean;
        const fwd = ft.lookup(packet(tu, rev), 0, 0, 100);
        if (fwd !== idx[i] || ft.direction !== DIRECTION.TO_SERVER || ft.created) throw new Error('initiator side');
        const back = ft.lookup(packet(tu, !rev), 0, 0, 100);
        if (back !== idx[i] || (ft.direction as number) !== DIRECTION.TO_CLIENT) throw new Error('responder side');
        const viaCreate = ft.lookupOrCreate(packet(tu, !rev), 0, 0, 100);
        if (viaCreate !== idx[i] || ft.created || (ft.direction as number) !== DIRECTION.TO_CLIENT) throw new Error('lookupOrCreate hit');
      });
      return ft.size === tuples.length && new Set(idx).size === tuples.length;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

t.test('the same 5-tuple through two GWLB endpoints is two flows, each found from both sides with its own endpoint', async (t) => {
  fc.assert(
    fc.property(tupleArb.filter(directional), word, word, word, word, fc.boolean(), (tu, aHi, aLo, bHi, bLo, rev) => {
      if (aHi === bHi && aLo === bLo) return true;
      const ft = new FlowTable({ maxFlows: 16, seed: 3 });
      const a = ft.lookupOrCreate(packet(tu, rev), aHi, aLo, 1);
      const b = ft.lookupOrCreate(packet(tu, rev), bHi, bLo, 2);
      if (!ft.created || a === b || ft.size !== 2) throw new Error('second endpoint did not get its own flow');
      for (const [f, hi, lo] of [[a, aHi, aLo], [b, bHi, bLo]] as const) {
        if (ft.lookup(packet(tu, rev), hi, lo, 3) !== f || ft.direction !== DIRECTION.TO_SERVER) throw new Error('initiator side');
        if (ft.lookup(packet(tu, !rev), hi, lo, 3) !== f || (ft.direction as number) !== DIRECTION.TO_CLIENT) throw new Error('responder side');
        if (ft.endpointIdHiOf(f) !== hi || ft.endpointIdLoOf(f) !== lo) throw new Error('endpoint id not kept');
      }
      // A third endpoint (differs from a in one bit, and from b) has no flow here.
      const cHi = ((aHi ^ 1) === bHi && aLo === bLo ? aHi ^ 2 : aHi ^ 1) >>> 0;
      if (ft.find(packet(tu), cHi, aLo) !== -1) throw new Error('a third endpoint found a flow');
      return ft.creations === 2;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

t.test('flows whose full 32-bit hashes collide are still told apart by endpoint id', async (t) => {
  // Search endpoint ids for two that hash alike on one 5-tuple (birthday bound: ~80,000 tries for 2^32), so the
  // table cannot rely on the hash: it must compare the endpoint words themselves. Both halves vary: with one
  // half fixed the hash is a bijection of the other (every mixing step is invertible), so it never collides.
  const tu = tcp(5);
  const seed = 11;
  const p = packet(tu);
  const seen = new Map<number, number>();
  const hiOf = (i: number): number => i;
  const loOf = (i: number): number => Math.imul(i, 0x9e3779b1) >>> 0;
  let pair: [number, number] | undefined;
  for (let i = 1; i < 2_000_000 && pair === undefined; i++) {
    const h = flowHash(p, hiOf(i), loOf(i), seed);
    const other = seen.get(h);
    if (other !== undefined) pair = [other, i];
    else seen.set(h, i);
  }
  if (pair === undefined) throw new Error('no collision found');
  const [a, b] = pair.map((i) => [hiOf(i), loOf(i)] as const) as [readonly [number, number], readonly [number, number]];
  t.equal(flowHash(p, a[0], a[1], seed), flowHash(p, b[0], b[1], seed), `endpoint ids ${a.map((x) => x.toString(16)).join(':')} and ${b.map((x) => x.toString(16)).join(':')} collide`);
  const ft = new FlowTable({ maxFlows: 8, seed });
  const f1 = ft.lookupOrCreate(p, a[0], a[1], 0);
  const f2 = ft.lookupOrCreate(p, b[0], b[1], 0);
  t.ok(ft.created, 'the colliding endpoint gets its own flow');
  t.not(f1, f2);
  t.equal(ft.find(packet(tu, true), a[0], a[1]), f1);
  t.equal(ft.find(packet(tu, true), b[0], b[1]), f2);
  ft.remove(f1);
  t.equal(ft.find(p, b[0], b[1]), f2, 'removing one leaves the other in the chain');
  t.equal(ft.find(p, a[0], a[1]), -1);
});

t.test('an IPv6 flow between IPv4-mapped addresses is not the IPv4 flow', async (t) => {
  const ft = new FlowTable({ maxFlows: 8 });
  const tu = udp(3);
  const v4 = ft.lookupOrCreate(packet(tu), 1, 2, 0);
  const v6p = packet(tu);
  v6p.ipVersion = 6;
  const v6 = ft.lookupOrCreate(v6p, 1, 2, 0);
  t.ok(ft.created);
  t.not(v6, v4);
  const out = createInnerPacket();
  ft.keyInto(v6, out);
  t.equal(out.ipVersion, 6, 'keyInto reports the version of the flow, not of its address form');
  ft.keyInto(v4, out);
  t.equal(out.ipVersion, 4);
});

t.test('an unknown packet is not found and creates nothing through lookup', async (t) => {
  const ft = new FlowTable({ maxFlows: 4 });
  ft.lookupOrCreate(packet(tcp(1)), 0, 0, 0);
  t.equal(ft.lookup(packet(tcp(2)), 0, 0, 1), -1);
  t.equal(ft.find(packet(udp(1)), 0, 0), -1, 'same addresses as nothing, other protocol');
  const swappedPortsOnly = tcp(1);
  [swappedPortsOnly.srcPort, swappedPortsOnly.dstPort] = [swappedPortsOnly.dstPort, swappedPortsOnly.srcPort];
  t.equal(ft.find(packet(swappedPortsOnly), 0, 0), -1, 'ports swapped without the addresses is another flow');
  t.equal(ft.size, 1);
});

t.test('ICMP echo reply finds the request flow as the responder direction', async (t) => {
  const ft = new FlowTable({ maxFlows: 4 });
  const echo: Tuple = { protocol: IP_PROTO.ICMP, src: V4(10, 0, 0, 1), dst: V4(8, 8, 8, 8), srcPort: 77, dstPort: 77 };
  const f = ft.lookupOrCreate(packet(echo), 0, 0, 0);
  t.equal(ft.lookup(packet(echo, true), 0, 0, 1), f);
  t.equal(ft.direction, DIRECTION.TO_CLIENT);
  t.equal(ft.lookup(packet({ ...echo, srcPort: 78, dstPort: 78 }, true), 0, 0, 1), -1, 'another identifier');
});

t.test('a later fragment finds the 3-tuple flow (ports 0), never the 5-tuple flow', async (t) => {
  const ft = new FlowTable({ maxFlows: 8 });
  const tu = udp(3);
  const five = ft.lookupOrCreate(packet(tu), 0, 0, 0);
  const frag = packet(tu);
  frag.isFragment = true;
  frag.isLaterFragment = true;
  t.equal(ft.lookup(frag, 0, 0, 1), -1, 'no 3-tuple flow yet');
  const three = ft.lookupOrCreate(frag, 0, 0, 2);
  t.ok(ft.created);
  t.not(three, five);
  t.same([ft.initiatorPortOf(three), ft.responderPortOf(three)], [0, 0], 'stored with ports 0');
  const revFrag = packet(tu, true);
  revFrag.isFragment = true;
  revFrag.isLaterFragment = true;
  t.equal(ft.lookup(revFrag, 0, 0, 3), three);
  t.equal(ft.direction, DIRECTION.TO_CLIENT);
});

t.test('lookups refresh last-seen only for their direction; countPacket counts per direction', async (t) => {
  const ft = new FlowTable({ maxFlows: 4 });
  const tu = tcp(5);
  const f = ft.lookupOrCreate(packet(tu), 0, 0, 1000);
  const seen = (): number[] => [ft.lastSeenMsOf(f, DIRECTION.TO_SERVER), ft.lastSeenMsOf(f, DIRECTION.TO_CLIENT)];
  t.same(seen(), [1000, 1000], 'unseen direction holds the creation time');
  ft.lookup(packet(tu, true), 0, 0, 1500);
  t.same(seen(), [1000, 1500]);
  ft.lookup(packet(tu), 0, 0, 1700);
  t.same(seen(), [1700, 1500]);
  t.equal(ft.lastSeenOf(f), 1700);
  t.same([...ft.packets.subarray(f * 2, f * 2 + 2)], [0, 0], 'lookups alone count nothing');
  ft.countPacket(f, DIRECTION.TO_SERVER, 100);
  ft.countPacket(f, DIRECTION.TO_SERVER, 40);
  ft.countPacket(f, DIRECTION.TO_CLIENT, 1500);
  t.same([...ft.packets.subarray(f * 2, f * 2 + 2)], [2, 1]);
  t.same([...ft.bytes.subarray(f * 2, f * 2 + 2)], [140, 1500]);
  ft.find(packet(tu, true), 0, 0);
  t.equal(ft.lastSeenMsOf(f, DIRECTION.TO_CLIENT), 1500, 'find does not touch');
});

t.test('setters write the verdict, TCP state and cookie fields (FlowAccess for stages); the endpoint id is the key\'s', async (t) => {
  const ft = new FlowTable({ maxFlows: 4 });
  const flows: FlowAccess = ft;
  const f = ft.lookupOrCreate(packet(tcp(1)), 0x0a0b0c0d, 0xfeedface, 0);
  const g = ft.lookupOrCreate(packet(tcp(2)), 0, 0, 0);
  t.equal(flows.getAction(f), ACTION.NONE);
  t.equal(flows.getRuleId(f), -1);
  flows.setVerdict(f, ACTION.REJECT, 12);
  flows.setTcpState(f, 7);
  t.equal(flows.getAction(f), ACTION.REJECT);
  t.equal(flows.getRuleId(f), 12);
  t.equal(flows.getTcpState(f), 7);
  t.equal(flows.getTcpState(g), 0, 'other flows untouched');
  t.equal(flows.getAction(g), ACTION.NONE);
  ft.setCookie(f, 0x12345678);
  t.equal(ft.action[f], ACTION.REJECT);
  t.equal(ft.ruleId[f], 12);
  t.equal(ft.endpointIdHiOf(f), 0x0a0b0c0d);
  t.equal(ft.endpointIdLoOf(f), 0xfeedface);
  t.equal(ft.endpointIdHiOf(g), 0, 'no endpoint option: 0, 0');
  t.equal(ft.flowCookie[f], 0x12345678);
});

t.test('creating at the cap evicts the least recently seen flow, whatever its class', async (t) => {
  const removed: number[] = [];
  const ft = new FlowTable({ maxFlows: 3, initialCapacity: 1 });
  ft.onRemove = (f) => removed.push(f);
  const a = ft.lookupOrCreate(packet(tcp(1)), 0, 0, 100);
  const b = ft.lookupOrCreate(packet(udp(1)), 0, 0, 200);
  const c = ft.lookupOrCreate(packet(tcp(2)), 0, 0, 300);
  ft.lookup(packet(tcp(1), true), 0, 0, 400); // a is now the most recent; b (UDP) is the oldest
  const d = ft.lookupOrCreate(packet(tcp(3)), 0, 0, 500);
  t.same(removed, [b]);
  t.equal(ft.evictions, 1);
  t.equal(ft.size, 3);
  t.equal(d, b, 'the freed index is reused');
  t.equal(ft.find(packet(udp(1)), 0, 0), -1);
  t.equal(ft.find(packet(tcp(1)), 0, 0), a);
  t.equal(ft.find(packet(tcp(2)), 0, 0), c);
  ft.markClosed(a);
  ft.lookupOrCreate(packet(tcp(4)), 0, 0, 600); // oldest now: c (300) in the TCP list, a (400) is closed
  t.same(removed, [b, c]);
  t.equal(ft.flowId[d], 4, 'flow ids keep increasing across index reuse');
});

t.test('the table never exceeds maxFlows and always evicts the least recently seen (model check)', async (t) => {
  const POOL = 14;
  const pool: Tuple[] = [];
  for (let i = 0; i < POOL; i++) pool.push(i % 2 === 0 ? tcp(i) : udp(i));
  const op = fc.oneof(
    fc.record({ kind: fc.constant('packet' as const), i: fc.nat(POOL - 1), rev: fc.boolean(), dt: fc.integer({ min: 1, max: 1500 }) }),
    fc.record({ kind: fc.constant('lookup' as const), i: fc.nat(POOL - 1), rev: fc.boolean(), dt: fc.integer({ min: 1, max: 1500 }) }),
    fc.record({ kind: fc.constant('remove' as const), i: fc.nat(POOL - 1), rev: fc.boolean(), dt: fc.integer({ min: 1, max: 10 }) }),
    fc.record({ kind: fc.constant('close' as const), i: fc.nat(POOL - 1), rev: fc.boolean(), dt: fc.integer({ min: 1, max: 10 }) }),
    fc.record({ kind: fc.constant('expire' as const), i: fc.nat(POOL - 1), rev: fc.boolean(), dt: fc.integer({ min: 1, max: 6000 }) }),
  );
  const TIMEOUT = { [FLOW_CLASS.TCP]: 5000, [FLOW_CLASS.OTHER]: 3000, [FLOW_CLASS.CLOSED]: 2000 } as Record<number, number>;

  fc.assert(
    fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { minLength: 20, maxLength: 150, size: 'max' }), (maxFlows, ops) => {
      const ft = new FlowTable({ maxFlows, initialCapacity: 1, tcpIdleMs: 5000, otherIdleMs: 3000, closedIdleMs: 2000 });
      const removedNow: number[] = [];
      ft.onRemove = (f) => {
        if (ft.isLive(f)) throw new Error('onRemove sees a flow still live');
        removedNow.push(f);
      };
      // Model: pool index -> { index, initiatorReversed, lastSeen, cls }
      const model = new Map<number, { index: number; rev: boolean; lastSeen: number; cls: number; id: number }>();
      let now = 0;
      let evictions = 0;
      let expirations = 0;
      for (const o of ops) {
        now += o.dt;
        removedNow.length = 0;
        const expectRemoved: number[] = [];
        const m = model.get(o.i);
        const tu = pool[o.i] as Tuple;
        if (o.kind === 'packet' || o.kind === 'lookup') {
          const f = o.kind === 'packet' ? ft.lookupOrCreate(packet(tu, o.rev), 0, 0, now) : ft.lookup(packet(tu, o.rev), 0, 0, now);
          if (m !== undefined) {
            if (f !== m.index || ft.created) throw new Error('existing flow not found');
            if (ft.direction !== (o.rev === m.rev ? 0 : 1)) throw new Error('wrong direction');
            m.lastSeen = now;
          } else if (o.kind === 'lookup') {
            if (f !== -1) throw new Error('lookup found an absent flow');
          } else {
            if (model.size === maxFlows) {
              let victim = -1;
              let oldest = Infinity;
              for (const [k, v] of model) if (v.lastSeen < oldest) [oldest, victim] = [v.lastSeen, k];
              expectRemoved.push((model.get(victim) as { index: number }).index);
              model.delete(victim);
              evictions++;
            }
            if (!ft.created || ft.direction !== 0) throw new Error('not created');
            model.set(o.i, { index: f, rev: o.rev, lastSeen: now, cls: tu.protocol === IP_PROTO.TCP ? FLOW_CLASS.TCP : FLOW_CLASS.OTHER, id: ft.flowId[f] as number });
          }
        } else if (o.kind === 'remove') {
          const f = m?.index ?? ft.capacity + 5;
          if (ft.remove(f) !== (m !== undefined)) throw new Error('remove result');
          if (m !== undefined) {
            expectRemoved.push(m.index);
            model.delete(o.i);
          }
        } else if (o.kind === 'close') {
          if (m !== undefined) {
            ft.markClosed(m.index);
            m.cls = FLOW_CLASS.CLOSED;
          }
        } else {
          const n = ft.expire(now, Infinity);
          for (const [k, v] of model) {
            if (now - v.lastSeen > (TIMEOUT[v.cls] as number)) {
              expectRemoved.push(v.index);
              model.delete(k);
              expirations++;
            }
          }
          if (n !== expectRemoved.length) throw new Error(`expired ${n}, expected ${expectRemoved.length}`);
        }
        const a = removedNow.slice().sort((x, y) => x - y).join();
        const b = expectRemoved.slice().sort((x, y) => x - y).join();
        if (a !== b) throw new Error(`${o.kind}: onRemove(${a}) expected (${b})`);
        if (ft.size !== model.size || ft.size > maxFlows || ft.capacity > maxFlows) throw new Error('size');
        if (ft.evictions !== evictions || ft.expirations !== expirations) throw new Error('counters');
        for (const [k, v] of model) {
          if (ft.find(packet(pool[k] as Tuple, !v.rev), 0, 0) !== v.index || ft.direction !== 1) throw new Error('model flow lost');
          if (ft.flowId[v.index] !== v.id || ft.classOf(v.index) !== v.cls) throw new Error('fields');
        }
      }
      return true;
    }),
    { numRuns: 400 },
  );
  t.pass();
});

t.test('flows expire by their class timeout on an injected clock', async (t) => {
  const expired: number[] = [];
  const ft = new FlowTable({ maxFlows: 100 });
  ft.onRemove = (f) => expired.push(f);
  const T0 = 1_000_000;
  const tcpFlow = ft.lookupOrCreate(packet(tcp(1)), 0, 0, T0);
  const udpFlow = ft.lookupOrCreate(packet(udp(1)), 0, 0, T0);
  t.equal(ft.expire(T0 + 120_000, 100), 0, 'idle exactly the UDP timeout is not yet past it');
  t.equal(ft.expire(T0 + 120_001, 100), 1);
  t.same(expired, [udpFlow]);
  t.equal(ft.expire(T0 + 350_000, 100), 0, 'TCP lives to 350 s (GWLB)');
  ft.lookup(packet(tcp(1), true), 0, 0, T0 + 349_000); // a stale clock: treated as the table's latest time
  t.equal(ft.lastSeenOf(tcpFlow), T0 + 350_000, 'the clock never goes back');
  t.equal(ft.expire(T0 + 700_000, 100), 0, 'refreshed: idle exactly 350 s');
  t.equal(ft.expire(T0 + 700_001, 100), 1);
  t.same(expired, [udpFlow, tcpFlow]);
  t.equal(ft.expirations, 2);
  t.equal(ft.size, 0);
});

t.test('a closed TCP flow expires after closedIdleMs, and late packets keep it alive', async (t) => {
  const expired: number[] = [];
  const ft = new FlowTable({ maxFlows: 100, closedIdleMs: 10_000 });
  ft.onRemove = (f) => expired.push(f);
  const open = ft.lookupOrCreate(packet(tcp(1)), 0, 0, 0);
  const closed = ft.lookupOrCreate(packet(tcp(2)), 0, 0, 0);
  ft.markClosed(closed);
  ft.markClosed(closed); // idempotent
  t.ok(ft.isClosed(closed));
  t.notOk(ft.isClosed(open));
  ft.lookup(packet(tcp(2), true), 0, 0, 8_000); // a late retransmission
  t.equal(ft.expire(18_000, 100), 0);
  t.equal(ft.expire(18_001, 100), 1);
  t.same(expired, [closed]);
  t.equal(ft.find(packet(tcp(1)), 0, 0), open, 'the open TCP flow is untouched');
});

t.test('closing a flow long after its last packet keeps expiry in last-seen order', async (t) => {
  const expired: number[] = [];
  const ft = new FlowTable({ maxFlows: 100, closedIdleMs: 5_000, tcpIdleMs: 60_000 });
  ft.onRemove = (f) => expired.push(f);
  const old = ft.lookupOrCreate(packet(tcp(1)), 0, 0, 0);
  const fresh = ft.lookupOrCreate(packet(tcp(2)), 0, 0, 4_000);
  ft.markClosed(fresh);
  ft.markClosed(old); // closed later, but silent since 0: must sit before `fresh` in the closed list
  t.equal(ft.expire(5_001, 100), 1);
  t.same(expired, [old]);
  t.equal(ft.expire(9_001, 100), 1);
  t.same(expired, [old, fresh]);
});

t.test('expire does at most maxWork removals per call and finishes on later calls', async (t) => {
  const ft = new FlowTable({ maxFlows: 1000 });
  for (let i = 0; i < 25; i++) ft.lookupOrCreate(packet(udp(i)), 0, 0, i);
  for (let i = 0; i < 5; i++) ft.lookupOrCreate(packet(tcp(i)), 0, 0, i);
  const later = 10_000_000;
  t.equal(ft.expire(later, 10), 10);
  t.equal(ft.expire(later, 10), 10);
  t.equal(ft.expire(later, 10), 10);
  t.equal(ft.expire(later, 10), 0);
  t.equal(ft.size, 0);
  t.equal(ft.expire(later, 0), 0, 'maxWork 0 does nothing');
});

t.test('onRemove runs once per removed flow with its fields still readable', async (t) => {
  const ft = new FlowTable({ maxFlows: 2 });
  const seen: { flow: number; id: number; port: number; header: number }[] = [];
  const hdr = new Uint8Array(300);
  ft.onRemove = (f) => {
    const out = createInnerPacket();
    ft.keyInto(f, out);
    seen.push({ flow: f, id: ft.flowId[f] as number, port: out.srcPort, header: ft.copyHeader(f, hdr, 0) });
  };
  const a = ft.lookupOrCreate(packet(tcp(1)), 0, 0, 0);
  ft.storeHeader(a, new Uint8Array(40).fill(9), 0, 40, 1, 2, 3);
  const b = ft.lookupOrCreate(packet(tcp(2)), 0, 0, 1);
  ft.lookupOrCreate(packet(tcp(3)), 0, 0, 2); // evicts a
  t.same(seen, [{ flow: a, id: 1, port: tcp(1).srcPort, header: 40 }]);
  t.equal(hdr[39], 9, 'the header was readable in the callback');
  t.ok(ft.remove(b));
  t.notOk(ft.remove(b), 'a second remove of the same index does nothing');
  t.notOk(ft.remove(-1));
  t.notOk(ft.remove(12345));
  t.equal(seen.length, 2);
  t.equal(ft.removals, 1);
  t.equal(ft.headerLength(a), 0, 'the removed flow no longer has a header');
  t.equal(ft.expire(1e12, 100), 1);
  t.equal(seen.length, 3);
});

t.test('onRemove may not create or remove flows', async (t) => {
  const ft = new FlowTable({ maxFlows: 1 });
  ft.onRemove = () => {
    ft.lookupOrCreate(packet(udp(9)), 0, 0, 0);
  };
  ft.lookupOrCreate(packet(tcp(1)), 0, 0, 0);
  t.throws(() => ft.lookupOrCreate(packet(tcp(2)), 0, 0, 1), { code: FLOW_TABLE_ERROR.REENTRANT });
  t.equal(ft.size, 0, 'the evicted flow is gone');
  ft.onRemove = undefined;
  const f = ft.lookupOrCreate(packet(tcp(3)), 0, 0, 2);
  t.equal(ft.find(packet(tcp(3)), 0, 0), f, 'the table still works after the callback threw');
  t.equal(ft.size, 1);
});

t.test('a throwing onRemove leaves the table consistent', async (t) => {
  const ft = new FlowTable({ maxFlows: 4 });
  ft.onRemove = () => {
    throw new Error('stage bug');
  };
  const f = ft.lookupOrCreate(packet(tcp(1)), 0, 0, 0);
  t.throws(() => ft.remove(f), /stage bug/);
  t.notOk(ft.isLive(f));
  t.equal(ft.size, 0);
  ft.onRemove = undefined;
  t.equal(ft.lookupOrCreate(packet(tcp(2)), 0, 0, 1), f, 'the index was freed and is reused');
});

t.test('the stored header is always the newest, with the outer addresses it came with', async (t) => {
  const ft = new FlowTable({ maxFlows: 4 });
  const f = ft.lookupOrCreate(packet(udp(1)), 0, 0, 0);
  const rx = new Uint8Array(200);
  for (let i = 0; i < 40; i++) rx[20 + i] = i; // header at offset 20 of a receive buffer
  t.ok(ft.storeHeader(f, rx, 20, 40, 0x7f000001, 0x7f000002, 40000));
  const out = new Uint8Array(100).fill(0xee);
  t.equal(ft.copyHeader(f, out, 10), 40);
  t.same([...out.subarray(10, 50)], [...rx.subarray(20, 60)]);
  t.equal(out[9], 0xee, 'nothing written before');
  t.equal(out[50], 0xee, 'nothing written after');
  // GWLB reuses the 5-tuple with a new flow cookie (last 4 bytes of its header): the new bytes win.
  rx[56] = 0xaa;
  rx[59] = 0xbb;
  t.ok(ft.storeHeader(f, rx, 20, 40, 0x7f000001, 0x7f000003, 40001));
  ft.copyHeader(f, out, 0);
  t.equal(out[36], 0xaa);
  t.equal(out[39], 0xbb);
  t.equal(ft.gwlbAddrOf(f), 0x7f000003);
  t.equal(ft.gwlbPortOf(f), 40001);
  t.equal(ft.localAddrOf(f), 0x7f000001);
  t.throws(() => ft.copyHeader(f, new Uint8Array(39), 0), { code: FLOW_TABLE_ERROR.RANGE });
  t.throws(() => ft.storeHeader(f, rx, 190, 40, 0, 0, 0), { code: FLOW_TABLE_ERROR.RANGE }, 'beyond the buffer');
  t.throws(() => ft.storeHeader(f, new Uint8Array(400), 0, 264, 0, 0, 0), { code: FLOW_TABLE_ERROR.RANGE }, 'over 260 bytes');
  t.throws(() => ft.storeHeader(3, rx, 0, 40, 0, 0, 0), { code: FLOW_TABLE_ERROR.BAD_FLOW });
});

t.test('headers up to 260 bytes come back byte for byte, each distinct header (cookie aside) kept once', async (t) => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          flow: fc.nat(7),
          len: fc.integer({ min: 8, max: GENEVE_MAX_HEADER_BYTES }),
          fill: fc.nat(3),
          cookie: fc.integer({ min: 0, max: 0xffffffff }),
          cookieAt: fc.option(fc.nat(4), { nil: -1 }),
          gwlb: fc.nat(1),
        }),
        { maxLength: 60, size: 'max' },
      ),
      (writes) => {
        const ft = new FlowTable({ maxFlows: 8, maxHeaderTemplates: 8 });
        for (let i = 0; i < 8; i++) ft.lookupOrCreate(packet(udp(i)), 0, 0, 0);
        // Oracle: each flow's newest header bytes, and the set of distinct (bytes without cookie, cookie offset, gwlb).
        const expect = new Map<number, { bytes: number[]; key: string }>();
        for (const w of writes) {
          const at = w.cookieAt < 0 || w.cookieAt * 4 + 4 > w.len ? -1 : w.cookieAt * 4;
          const buf = new Uint8Array(w.len + 3);
          for (let i = 0; i < w.len; i++) buf[3 + i] = (w.fill + i * 7) & 0xff;
          if (at >= 0) new DataView(buf.buffer).setUint32(3 + at, w.cookie);
          if (!ft.storeHeader(w.flow, buf, 3, w.len, 1, w.gwlb, 3, at)) return false; // 8 flows, 8 templates
          const bytes = [...buf.subarray(3)];
          const masked = bytes.map((b, i) => (at >= 0 && i >= at && i < at + 4 ? 0 : b));
          expect.set(w.flow, { bytes, key: `${masked.join(',')}/${at}/${w.gwlb}` });
        }
        for (let f = 0; f < 8; f++) {
          const want = expect.get(f)?.bytes;
          const out = new Uint8Array(GENEVE_MAX_HEADER_BYTES);
          const n = ft.copyHeader(f, out, 0);
          if (n !== (want?.length ?? 0) || ft.headerLength(f) !== n) return false;
          if (want !== undefined && !want.every((b, i) => out[i] === b)) return false;
        }
        return ft.headerTemplates === new Set([...expect.values()].map((e) => e.key)).size;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

t.test('flows of one endpoint share one header template; each gets its own cookie back', async (t) => {
  const ft = new FlowTable({ maxFlows: 2000 });
  const dgram = encodeGeneve({ endpointIdHi: 0x80000001, endpointIdLo: 0xfedcba98, flowCookie: 0x12345678 }, Buffer.from('45000014000000004011000001020304050607', 'hex'));
  const gh = createGeneveHeader();
  decodeGeneve(dgram, 0, dgram.length, gh);
  const hdr = dgram.subarray(0, gh.headerLength);
  const cookieAt = gh.flowCookieOffset;
  t.equal(hdr.readUInt32BE(cookieAt), 0x12345678, 'the decoder reports where the cookie bytes are');
  const flows: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const f = ft.lookupOrCreate(packet(udp(i)), 0x80000001, 0xfedcba98, i);
    hdr.writeUInt32BE((0x9000_0000 + i) >>> 0, cookieAt);
    ft.storeHeader(f, hdr, 0, hdr.length, 0x7f000001, 0x7f000002, 40000 + i, cookieAt);
    flows.push(f);
  }
  t.equal(ft.headerTemplates, 1, 'one template for 1000 flows');
  const out = Buffer.alloc(hdr.length);
  let exact = 0;
  for (let i = 0; i < 1000; i++) {
    hdr.writeUInt32BE((0x9000_0000 + i) >>> 0, cookieAt);
    ft.copyHeader(flows[i] as number, out, 0);
    if (out.equals(hdr) && ft.flowCookie[flows[i] as number] === 0x9000_0000 + i && ft.gwlbPortOf(flows[i] as number) === 40000 + i) exact++;
  }
  t.equal(exact, 1000, 'every flow gets its own cookie inside the shared bytes');
  // A second GWLB node (another outer source address) is another template; the flow moves to it.
  const f0 = flows[0] as number;
  hdr.writeUInt32BE(0x9000_0000, cookieAt);
  t.ok(ft.storeHeader(f0, hdr, 0, hdr.length, 0x7f000001, 0x7f000009, 40000, cookieAt));
  t.equal(ft.headerTemplates, 2);
  t.equal(ft.gwlbAddrOf(f0), 0x7f000009);
  t.equal(ft.gwlbAddrOf(flows[1] as number), 0x7f000002, 'the others keep theirs');
  for (const f of flows) ft.remove(f);
  t.equal(ft.headerTemplates, 0, 'templates are freed with their last flow');
});

t.test('when every header template is in use a new header is dropped, never left stale', async (t) => {
  const ft = new FlowTable({ maxFlows: 4, maxHeaderTemplates: 1 });
  const a = ft.lookupOrCreate(packet(udp(1)), 0, 0, 0);
  const b = ft.lookupOrCreate(packet(udp(2)), 0, 0, 0);
  const long = new Uint8Array(100).fill(1);
  t.ok(ft.storeHeader(a, long, 0, 100, 0, 0, 0));
  t.ok(ft.storeHeader(b, long, 0, 100, 0, 0, 0), 'the same header shares the one template');
  t.notOk(ft.storeHeader(b, new Uint8Array(40).fill(2), 0, 40, 0, 0, 0), 'no room for a second distinct header');
  t.equal(ft.headerLength(b), 0, 'the older header is not kept');
  t.equal(ft.copyHeader(b, new Uint8Array(0), 0), 0);
  t.equal(ft.headerOverflows, 1);
  t.ok(ft.storeHeader(a, new Uint8Array(40).fill(3), 0, 40, 0, 0, 0), 'a moves to a new header: its old template is freed first');
  t.equal(ft.headerTemplates, 1);
  t.notOk(ft.storeHeader(b, long, 0, 100, 0, 0, 0), 'b cannot take a second one');
  ft.remove(a);
  t.equal(ft.headerTemplates, 0, 'removal frees the template');
  t.ok(ft.storeHeader(b, long, 0, 100, 0, 0, 0), 'which b can now use');
});

t.test('times stay exact across the 32-bit rebase of the table clock', async (t) => {
  const ft = new FlowTable({ maxFlows: 8, tcpIdleMs: 350_000 });
  const t0 = 5_000.25;
  const old = ft.lookupOrCreate(packet(tcp(1)), 0, 0, t0);
  const live = ft.lookupOrCreate(packet(tcp(2)), 0, 0, t0);
  // Keep `live` busy for 30 days (past 2^31 ms ≈ 24.8 days); `old` is touched only at the start.
  const day = 86_400_000;
  for (let d = 1; d <= 30; d++) {
    ft.lookup(packet(tcp(2)), 0, 0, t0 + d * day);
    ft.expire(t0 + d * day, 100);
    if (d === 1) t.notOk(ft.isLive(old), 'the idle flow expired after a day');
  }
  const now = t0 + 30 * day;
  t.equal(ft.lastSeenOf(live), Math.floor(now), 'last seen is the clock, in whole ms');
  t.ok(ft.createdMsOf(live) <= now - 12 * day, 'a flow older than the rebase window reads at most ~12 days younger');
  ft.lookup(packet(tcp(2)), 0, 0, now + 350_000);
  t.equal(ft.expire(now + 350_000 + 350_000, 10), 0, 'not idle past its timeout yet');
  t.equal(ft.expire(now + 350_000 + 350_001, 10), 1, 'expires 1 ms later');
});

t.test('growth doubles storage up to maxFlows and keeps every flow findable', async (t) => {
  const ft = new FlowTable({ maxFlows: 3000, initialCapacity: 16 });
  const caps = new Set<number>();
  const idx: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const f = ft.lookupOrCreate(packet(i % 3 === 0 ? udp(i) : tcp(i)), i, ~i >>> 0, i);
    idx.push(f);
    ft.setVerdict(f, ACTION.PASS, i);
    ft.countPacket(f, DIRECTION.TO_CLIENT, i);
    const hdr = new Uint8Array(40).map((_, k) => (i + k) & 0xff);
    ft.storeHeader(f, hdr, 0, 40, i, i + 1, i & 0xffff);
    caps.add(ft.capacity);
  }
  t.same([...caps], [16, 32, 64, 128, 256, 512, 1024, 2048, 3000]);
  t.equal(ft.evictions, 0);
  let ok = 0;
  for (let i = 0; i < 3000; i++) {
    const tu = i % 3 === 0 ? udp(i) : tcp(i);
    const f = ft.find(packet(tu, true), i, ~i >>> 0);
    const out = new Uint8Array(40);
    const fieldsKept =
      ft.ruleId[f] === i &&
      ft.endpointIdLoOf(f) === ~i >>> 0 &&
      ft.bytes[f * 2 + 1] === i &&
      ft.flowId[f] === i + 1 &&
      ft.createdMsOf(f) === i &&
      ft.gwlbAddrOf(f) === i + 1 &&
      ft.copyHeader(f, out, 0) === 40 &&
      out.every((b, k) => b === ((i + k) & 0xff));
    if (f === idx[i] && ft.direction === DIRECTION.TO_CLIENT && fieldsKept) ok++;
  }
  t.equal(ok, 3000, 'all flows found from the responder side with their fields and headers after growth');
  ft.lookupOrCreate(packet(tcp(99_999)), 0, 0, 5000);
  t.equal(ft.capacity, 3000, 'never beyond maxFlows');
  t.equal(ft.evictions, 1);
  t.equal(ft.find(packet(udp(0)), 0, 0), -1, 'the oldest flow made room');
});

t.test('growth preserves LRU order, so expiry after growth still goes oldest first', async (t) => {
  const expired: number[] = [];
  const ft = new FlowTable({ maxFlows: 64, initialCapacity: 1, otherIdleMs: 1000 });
  ft.onRemove = (f) => expired.push(ft.flowId[f] as number);
  for (let i = 0; i < 40; i++) ft.lookupOrCreate(packet(udp(i)), 0, 0, i * 10);
  t.equal(ft.expire(1000 + 195, 1000), 20, 'flows last seen at 0..190 ms are past 1 s');
  t.same(expired, Array.from({ length: 20 }, (_, i) => i + 1));
});
