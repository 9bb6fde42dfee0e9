import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import {
  decodeInner,
  INNER_PROTOCOL_ANY,
  ipv4HeaderChecksumOk,
  MAX_IPV6_EXTENSION_HEADERS,
  PACKET_ANOMALY,
  PACKET_ANOMALY_NAMES,
} from '../../src/packet/decode.js';
import { createInnerPacket, type InnerPacket } from '../../src/packet/types.js';
import { hex, hexdump, loadHex } from '../fixtures/hex.js';
import { haveTool } from '../helpers/tools.js';

const P = PACKET_ANOMALY;
const V4 = 0x0800;
const V6 = 0x86dd;

/** Plain-object view of an InnerPacket (typed arrays as arrays) for t.match / t.same. */
function view(p: InnerPacket): Record<string, unknown> {
  return { ...p, src: Array.from(p.src), dst: Array.from(p.dst) };
}

function decode(buf: Buffer, protocolType: number, off = 0, len = buf.length - off): InnerPacket {
  const p = createInnerPacket();
  const rc = decodeInner(buf, off, len, protocolType, p);
  if (rc !== p.anomaly) throw new Error(`return value ${rc} differs from out.anomaly ${p.anomaly}`);
  return p;
}

const mapped = (a: number): number[] => [0, 0, 0xffff, a];

interface FixtureCase {
  file: string;
  protocolType: number;
  behaviour: string;
  expected: Record<string, unknown>;
}

/** Expected values written by hand from the annotations in test/fixtures/packet/. */
const FIXTURES: FixtureCase[] = [
  {
    file: 'ipv4-options-tcp-syn.hex',
    protocolType: V4,
    behaviour: 'IPv4 options are skipped by IHL and TCP options by Data Offset',
    expected: {
      anomaly: P.OK,
      ipVersion: 4,
      protocol: 6,
      l3Offset: 0,
      l4Offset: 24,
      payloadOffset: 48,
      payloadLength: 0,
      ipLength: 48,
      src: mapped(0xc000020a),
      dst: mapped(0xc6336414),
      srcPort: 49152,
      dstPort: 443,
      tcpFlags: 0x02,
      tcpSeq: 0x01020304,
      tcpAck: 0,
      tcpWindow: 64240,
      icmpType: -1,
      icmpCode: -1,
      isFragment: false,
      isLaterFragment: false,
      ttl: 64,
    },
  },
  {
    file: 'ipv4-first-fragment-udp.hex',
    protocolType: V4,
    behaviour: 'a first IPv4 fragment is decoded down to UDP although UDP Length covers later fragments',
    expected: {
      anomaly: P.OK,
      protocol: 17,
      l4Offset: 20,
      payloadOffset: 28,
      payloadLength: 16,
      ipLength: 44,
      srcPort: 5000,
      dstPort: 6000,
      isFragment: true,
      isLaterFragment: false,
    },
  },
  {
    file: 'ipv4-later-fragment.hex',
    protocolType: V4,
    behaviour: 'a later IPv4 fragment keeps its protocol and addresses but has no transport header',
    expected: {
      anomaly: P.OK,
      protocol: 17,
      l4Offset: -1,
      payloadOffset: 0,
      payloadLength: 0,
      ipLength: 36,
      src: mapped(0x0a000001),
      dst: mapped(0x0a000002),
      srcPort: 0,
      dstPort: 0,
      isFragment: true,
      isLaterFragment: true,
      fragmentId: 0xbeef,
      fragmentOffset: 24,
      moreFragments: false,
      fragmentDataOffset: 20,
    },
  },
  {
    file: 'ipv6-hbh-frag-dest-tcp.hex',
    protocolType: V6,
    behaviour: 'Hop-by-Hop, Fragment and Destination Options headers are walked to the TCP header',
    expected: {
      anomaly: P.OK,
      ipVersion: 6,
      protocol: 6,
      l4Offset: 64,
      payloadOffset: 84,
      payloadLength: 5,
      ipLength: 89,
      src: [0x20010db8, 0, 0, 1],
      dst: [0x20010db8, 0, 0, 2],
      srcPort: 40000,
      dstPort: 80,
      tcpFlags: 0x18,
      tcpSeq: 1000,
      tcpAck: 2000,
      tcpWindow: 512,
      // RFC 6946 §4: an atomic fragment (offset 0, M = 0) is a whole packet, not a fragment to track.
      isFragment: false,
      isLaterFragment: false,
      fragmentId: 0,
      ttl: 64,
    },
  },
  {
    file: 'ipv4-icmp-echo-request.hex',
    protocolType: V4,
    behaviour: 'an ICMP echo puts its identifier in both ports',
    expected: {
      anomaly: P.OK,
      protocol: 1,
      l4Offset: 20,
      icmpType: 8,
      icmpCode: 0,
      srcPort: 0x1c2d,
      dstPort: 0x1c2d,
      payloadOffset: 28,
      payloadLength: 8,
      src: mapped(0xc0a8010a),
      dst: mapped(0x08080808),
      tcpFlags: 0,
    },
  },
  {
    file: 'ipv6-icmpv6-echo-reply.hex',
    protocolType: V6,
    behaviour: 'an ICMPv6 echo reply puts its identifier in both ports',
    expected: {
      anomaly: P.OK,
      protocol: 58,
      l4Offset: 40,
      icmpType: 129,
      icmpCode: 0,
      srcPort: 0xbeef,
      dstPort: 0xbeef,
      payloadOffset: 48,
      payloadLength: 4,
      ttl: 63,
    },
  },
  {
    file: 'ipv4-tcp-truncated.hex',
    protocolType: V4,
    behaviour: 'a TCP header cut at 12 bytes is refused, with the IP fields still available for logging',
    expected: {
      anomaly: P.TRUNCATED_TCP,
      protocol: 6,
      l4Offset: 20,
      src: mapped(0x0a000001),
      srcPort: 0,
      tcpSeq: 0,
      payloadLength: 0,
    },
  },
  {
    file: 'ipv4-udp-length-too-long.hex',
    protocolType: V4,
    behaviour: 'a UDP Length beyond the IP payload of an unfragmented packet is refused',
    expected: { anomaly: P.BAD_UDP_LENGTH, protocol: 17, srcPort: 5000, dstPort: 6000, payloadLength: 0 },
  },
  {
    file: 'ipv4-udp-length-too-short.hex',
    protocolType: V4,
    behaviour: 'a UDP Length below the UDP header size is refused',
    expected: { anomaly: P.BAD_UDP_LENGTH, protocol: 17, payloadLength: 0 },
  },
  {
    file: 'ipv4-udp-length-short-of-ip.hex',
    protocolType: V4,
    behaviour: 'a UDP Length shorter than the IP payload bounds the UDP payload',
    expected: { anomaly: P.OK, payloadOffset: 28, payloadLength: 2 },
  },
];

t.test('every anomaly code has its name at its index, with no gaps', async (t) => {
  const entries = Object.entries(PACKET_ANOMALY);
  t.equal(PACKET_ANOMALY_NAMES.length, entries.length);
  for (const [name, code] of entries) t.equal(PACKET_ANOMALY_NAMES[code], name);
});

for (const fx of FIXTURES) {
  t.test(`${fx.file}: ${fx.behaviour}`, async (t) => {
    const p = decode(loadHex(`packet/${fx.file}`), fx.protocolType);
    t.equal(PACKET_ANOMALY_NAMES[p.anomaly], PACKET_ANOMALY_NAMES[fx.expected['anomaly'] as number], 'anomaly');
    t.match(view(p), fx.expected);
  });
}

t.test('the payload of the IPv6 fixture is the bytes after the TCP header', async (t) => {
  const buf = loadHex('packet/ipv6-hbh-frag-dest-tcp.hex');
  const p = decode(buf, V6);
  t.equal(buf.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength).toString('latin1'), 'GET /');
});

t.test('an IPv6 Fragment header with a non-zero offset stops the walk: later fragment, no transport', async (t) => {
  const buf = loadHex('packet/ipv6-hbh-frag-dest-tcp.hex');
  buf.writeUInt16BE(0x0008, 50); // Fragment Offset 1 (8 bytes), M = 0
  const p = decode(buf, V6);
  t.match(view(p), {
    anomaly: P.OK, isFragment: true, isLaterFragment: true, protocol: 60, l4Offset: -1, srcPort: 0,
    fragmentId: 0x12345678, fragmentOffset: 8, moreFragments: false, fragmentDataOffset: 56,
  });
});

t.test('an IPv6 first fragment (M = 1) is decoded down to TCP', async (t) => {
  const buf = loadHex('packet/ipv6-hbh-frag-dest-tcp.hex');
  buf.writeUInt16BE(0x0001, 50); // Fragment Offset 0, M = 1
  t.match(view(decode(buf, V6)), {
    anomaly: P.OK, isFragment: true, isLaterFragment: false, protocol: 6, dstPort: 80,
    fragmentId: 0x12345678, fragmentOffset: 0, moreFragments: true, fragmentDataOffset: 56,
  });
});

t.test('an IPv6 first fragment carrying a partial UDP datagram is not a UDP length error', async (t) => {
  const buf = hex(`
    60 00 00 00  00 18 2c 40          # IPv6, Payload Length 24, Next Header 44 (Fragment), Hop Limit 64
    ${'00'.repeat(15)} 01             # src ::1
    ${'00'.repeat(15)} 02             # dst ::2
    11 00 00 01  00 00 00 09          # Fragment: Next Header 17, Offset 0, M = 1, Identification 9
    13 88 17 70  04 00 00 00          # UDP 5000 -> 6000, Length 1024 (the whole datagram), checksum
    01 02 03 04  05 06 07 08          # first 8 data bytes
  `);
  t.match(view(decode(buf, V6)), { anomaly: P.OK, protocol: 17, payloadLength: 8, isFragment: true });
  buf.writeUInt16BE(0x0000, 42); // same packet without M: an atomic fragment, and now the length is a lie
  t.equal(decode(buf, V6).anomaly, P.BAD_UDP_LENGTH);
});

t.test('an IPv4 first fragment does not relax the UDP Length floor of 8', async (t) => {
  const buf = loadHex('packet/ipv4-first-fragment-udp.hex');
  buf.writeUInt16BE(7, 24); // UDP Length 7
  t.equal(decode(buf, V4).anomaly, P.BAD_UDP_LENGTH);
});

t.test('IPv4 header length checks', async (t) => {
  const good = loadHex('packet/ipv4-icmp-echo-request.hex');
  t.equal(decode(good, V4, 0, 19).anomaly, P.TRUNCATED_IP_HEADER, '19 bytes');
  t.equal(decode(good, V4, 0, 0).anomaly, P.TRUNCATED_IP_HEADER, 'no bytes');
  const ihl4 = Buffer.from(good);
  ihl4.writeUInt8(0x44, 0); // IHL 4
  t.equal(decode(ihl4, V4).anomaly, P.BAD_IPV4_IHL, 'IHL 4');
  const ihlBeyond = Buffer.from(good);
  ihlBeyond.writeUInt8(0x4f, 0); // IHL 15 = 60 bytes > Total Length 36
  t.equal(decode(ihlBeyond, V4).anomaly, P.BAD_IP_LENGTH, 'IHL beyond Total Length');
  const tooLong = Buffer.from(good);
  tooLong.writeUInt16BE(37, 2); // one byte more than present
  t.equal(decode(tooLong, V4).anomaly, P.BAD_IP_LENGTH, 'Total Length beyond the bytes present');
  const tooShort = Buffer.from(good);
  tooShort.writeUInt16BE(19, 2);
  t.equal(decode(tooShort, V4).anomaly, P.BAD_IP_LENGTH, 'Total Length below the header');
});

t.test('bytes after the IPv4 Total Length (link padding) are not payload', async (t) => {
  const padded = Buffer.concat([loadHex('packet/ipv4-icmp-echo-request.hex'), Buffer.alloc(10, 0xaa)]);
  const p = decode(padded, V4);
  t.match(view(p), { anomaly: P.OK, ipLength: 36, payloadLength: 8 });
});

t.test('the version nibble must agree with the GENEVE Protocol Type', async (t) => {
  const v4 = loadHex('packet/ipv4-icmp-echo-request.hex');
  const v6 = loadHex('packet/ipv6-icmpv6-echo-reply.hex');
  t.equal(decode(v4, V6).anomaly, P.BAD_IP_VERSION, 'IPv4 bytes as IPv6');
  t.equal(decode(v6, V4).anomaly, P.BAD_IP_VERSION, 'IPv6 bytes as IPv4');
  t.equal(decode(v4, 0x6558).anomaly, P.BAD_IP_VERSION, 'a protocol type that is not IP');
  t.equal(decode(v4, INNER_PROTOCOL_ANY).ipVersion, 4, 'ANY takes IPv4 by its nibble');
  t.equal(decode(v6, INNER_PROTOCOL_ANY).ipVersion, 6, 'ANY takes IPv6 by its nibble');
  t.equal(decode(hex('50 00 00 00'), INNER_PROTOCOL_ANY).anomaly, P.BAD_IP_VERSION, 'ANY refuses version 5');
});

t.test('IPv6 length checks', async (t) => {
  const good = loadHex('packet/ipv6-icmpv6-echo-reply.hex');
  t.equal(decode(good, V6, 0, 39).anomaly, P.TRUNCATED_IP_HEADER, '39 bytes');
  t.equal(decode(good, V6, 0, good.length - 1).anomaly, P.BAD_IP_LENGTH, 'Payload Length beyond the bytes present');
});

t.test('a truncated extension header is refused', async (t) => {
  const buf = hex(`
    60 00 00 00  00 08 00 40          # IPv6, Payload Length 8, Next Header 0 (Hop-by-Hop)
    ${'00'.repeat(32)}                # ::, ::
    06 01 01 04 00 00 00 00           # Hop-by-Hop: Next Header 6, Hdr Ext Len 1 -> 16 bytes, only 8 present
  `);
  t.equal(decode(buf, V6).anomaly, P.TRUNCATED_EXTENSION_HEADER);
  const frag = hex(`
    60 00 00 00  00 04 2c 40          # IPv6, Payload Length 4, Next Header 44 (Fragment)
    ${'00'.repeat(32)}
    06 00 00 00                       # half a Fragment header
  `);
  t.equal(decode(frag, V6).anomaly, P.TRUNCATED_EXTENSION_HEADER);
});

/** IPv6 packet with `n` Destination Options headers (8 bytes each) and then No Next Header. */
function destOptsChain(n: number): Buffer {
  const fixed = hex(`60 00 00 00 ${(n * 8).toString(16).padStart(4, '0')} 3c 40 ${'00'.repeat(32)}`);
  const ext: Buffer[] = [];
  for (let i = 0; i < n; i++) ext.push(hex(`${i === n - 1 ? '3b' : '3c'} 00 01 04 00 00 00 00`));
  return Buffer.concat([fixed, ...ext]);
}

t.test(`at most ${MAX_IPV6_EXTENSION_HEADERS} extension headers are walked`, async (t) => {
  t.match(view(decode(destOptsChain(MAX_IPV6_EXTENSION_HEADERS), V6)), { anomaly: P.OK, protocol: 59, l4Offset: -1 });
  t.equal(decode(destOptsChain(MAX_IPV6_EXTENSION_HEADERS + 1), V6).anomaly, P.TOO_MANY_EXTENSION_HEADERS);
});

t.test('AH is skipped by its own length rule ((Payload Len + 2) * 4) and Routing by the generic one', async (t) => {
  const buf = hex(`
    60 00 00 00  00 38 2b 40          # IPv6, Payload Length 56, Next Header 43 (Routing)
    ${'00'.repeat(32)}
    33 02 04 00 00 00 00 00           # Routing: Next Header 51 (AH), Hdr Ext Len 2 -> 24 bytes, type 4
    ${'00'.repeat(16)}
    11 04 00 00                       # AH: Next Header 17, Payload Len 4 -> (4 + 2) * 4 = 24 bytes
    00 00 01 00  00 00 00 01          # SPI, Sequence Number
    ${'00'.repeat(12)}                # ICV
    00 35 c0 01  00 08 00 00          # UDP 53 -> 49153, Length 8 (no data)
  `);
  t.match(view(decode(buf, V6)), { anomaly: P.OK, protocol: 17, l4Offset: 88, srcPort: 53, dstPort: 49153, payloadLength: 0 });
});

t.test('ESP ends the walk with protocol 50 and no ports', async (t) => {
  const buf = hex(`
    60 00 00 00  00 10 32 40          # IPv6, Payload Length 16, Next Header 50 (ESP)
    ${'00'.repeat(32)}
    00 00 10 00  00 00 00 01  de ad be ef  ca fe ba be   # SPI, sequence, ciphertext
  `);
  t.match(view(decode(buf, V6)), { anomaly: P.OK, protocol: 50, l4Offset: 40, srcPort: 0, dstPort: 0, payloadLength: 0 });
});

t.test('other IPv4 protocols give the protocol number and the transport offset only', async (t) => {
  const buf = hex(`
    45 00 00 1c  00 00 00 00  40 2f 00 00   # IPv4, Total Length 28, Protocol 47 (GRE); checksum not checked
    0a 00 00 01  0a 00 00 02
    00 00 08 00  00 00 00 00                # GRE header
  `);
  t.match(view(decode(buf, V4)), { anomaly: P.OK, protocol: 47, l4Offset: 20, srcPort: 0, dstPort: 0, icmpType: -1 });
});

t.test('TCP Data Offset checks', async (t) => {
  const good = loadHex('packet/ipv4-options-tcp-syn.hex');
  const four = Buffer.from(good);
  four.writeUInt8(0x40, 24 + 12); // Data Offset 4
  t.equal(decode(four, V4).anomaly, P.BAD_TCP_DATA_OFFSET, 'Data Offset 4');
  const beyond = Buffer.from(good);
  beyond.writeUInt8(0x70, 24 + 12); // Data Offset 7 = 28 bytes, 24 present
  t.equal(decode(beyond, V4).anomaly, P.TRUNCATED_TCP, 'Data Offset beyond the segment');
});

t.test('ICMP length checks', async (t) => {
  const echo = loadHex('packet/ipv4-icmp-echo-request.hex');
  const three = Buffer.from(echo.subarray(0, 23));
  three.writeUInt16BE(23, 2);
  t.equal(decode(three, V4).anomaly, P.TRUNCATED_ICMP, '3 bytes of ICMP');
  const six = Buffer.from(echo.subarray(0, 26));
  six.writeUInt16BE(26, 2);
  t.equal(decode(six, V4).anomaly, P.TRUNCATED_ICMP, 'an echo without its identifier');
  const unreachable = hex(`
    45 00 00 18  00 00 00 00  40 01 00 00   # IPv4, Total Length 24, ICMP
    0a 00 00 01  0a 00 00 02
    03 01 00 00                             # Destination Unreachable, code 1: 4 bytes only
  `);
  t.match(view(decode(unreachable, V4)), { anomaly: P.OK, icmpType: 3, icmpCode: 1, srcPort: 0, payloadLength: 0, payloadOffset: 24 });
});

t.test('ICMP type 128 over IPv4 is not an echo (echo types depend on the protocol)', async (t) => {
  const buf = loadHex('packet/ipv4-icmp-echo-request.hex');
  buf.writeUInt8(128, 20);
  t.match(view(decode(buf, V4)), { anomaly: P.OK, icmpType: 128, srcPort: 0, dstPort: 0 });
});

t.test('a packet at an offset decodes with every offset absolute in the buffer', async (t) => {
  const pkt = loadHex('packet/ipv6-hbh-frag-dest-tcp.hex');
  const big = Buffer.alloc(pkt.length + 40, 0x99);
  pkt.copy(big, 17);
  const p = decode(big, V6, 17, pkt.length);
  t.match(view(p), { anomaly: P.OK, l3Offset: 17, l4Offset: 17 + 64, payloadOffset: 17 + 84, payloadLength: 5 });
});

t.test('ipv4HeaderChecksumOk verifies the header checksum the decoder does not enforce', async (t) => {
  const good = loadHex('packet/ipv4-options-tcp-syn.hex');
  t.ok(ipv4HeaderChecksumOk(good, 0), 'fixture checksum (computed outside this project) verifies');
  const bad = Buffer.from(good);
  bad.writeUInt8(0x3f, 8); // TTL 63 without updating the checksum
  t.notOk(ipv4HeaderChecksumOk(bad, 0));
  t.equal(decode(bad, V4).anomaly, P.OK, 'decodeInner still accepts it');
  const optionByte = Buffer.from(good);
  optionByte.writeUInt8(0x01, 22); // inside the option area: only a checksum over IHL * 4 bytes sees this
  t.notOk(ipv4HeaderChecksumOk(optionByte, 0));
  t.notOk(ipv4HeaderChecksumOk(good.subarray(0, 19), 0), 'a header that does not fit');
  t.notOk(ipv4HeaderChecksumOk(good.subarray(0, 22), 0), 'options that do not fit');
});

// ---------------------------------------------------------------------------------------------------------------
// Properties.

const allFixtures = FIXTURES.map((f) => ({ buf: loadHex(`packet/${f.file}`), protocolType: f.protocolType }));
const arbProtocolType = fc.constantFrom(V4, V6, INNER_PROTOCOL_ANY, 0x6558);

const arbWindow = fc
  .uint8Array({ maxLength: 200 })
  .chain((a) => fc.tuple(fc.constant(Buffer.from(a)), fc.integer({ min: 0, max: a.length })))
  .chain(([b, off]) => fc.tuple(fc.constant(b), fc.constant(off), fc.integer({ min: 0, max: b.length - off }), arbProtocolType));

/** A fixture with a few bytes overwritten and possibly cut short. */
const arbMutated = fc
  .tuple(
    fc.constantFrom(...allFixtures),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    fc.nat(),
  )
  .map(([f, edits, cut]) => {
    const b = Buffer.from(f.buf);
    for (const [i, v] of edits) b[i % b.length] = v;
    return [b, 0, b.length - (cut % 2 === 0 ? cut % b.length : 0), f.protocolType] as const;
  });

const arbInput = fc.oneof(arbWindow, arbMutated);

t.test('decodeInner never throws on arbitrary bytes and keeps every offset inside the packet', async (t) => {
  const p = createInnerPacket();
  fc.assert(
    fc.property(arbInput, ([b, off, len, pt]) => {
      const rc = decodeInner(b, off, len, pt, p);
      if (rc !== p.anomaly || PACKET_ANOMALY_NAMES[rc] === undefined) throw new Error(`bad code ${rc}`);
      if (rc === P.OK) {
        const end = off + p.ipLength;
        if (p.ipLength > len) throw new Error('ipLength beyond len');
        if (p.l4Offset !== -1 && (p.l4Offset < off || p.l4Offset > end)) throw new Error('l4Offset outside');
        if (p.payloadLength > 0 && (p.payloadOffset < off || p.payloadOffset + p.payloadLength > end)) {
          throw new Error('payload outside');
        }
        if (p.isLaterFragment && (p.l4Offset !== -1 || p.srcPort !== 0)) throw new Error('later fragment with L4');
      }
    }),
    { numRuns: 5000 },
  );
  t.pass('no throw');
});

t.test('every field is reset: decoding garbage after a good packet leaves nothing of the good one', async (t) => {
  const good = loadHex('packet/ipv6-hbh-frag-dest-tcp.hex');
  const icmp = loadHex('packet/ipv4-icmp-echo-request.hex');
  fc.assert(
    fc.property(arbInput, fc.boolean(), ([b, off, len, pt], which) => {
      const used = createInnerPacket();
      if (which) decodeInner(good, 0, good.length, V6, used);
      else decodeInner(icmp, 0, icmp.length, V4, used);
      const fresh = createInnerPacket();
      decodeInner(b, off, len, pt, used);
      decodeInner(b, off, len, pt, fresh);
      const u = view(used);
      const f = view(fresh);
      for (const k of Object.keys(f)) {
        if (JSON.stringify(u[k]) !== JSON.stringify(f[k])) throw new Error(`field ${k} kept ${JSON.stringify(u[k])}`);
      }
    }),
    { numRuns: 3000 },
  );
  t.pass('no leftovers');
});

t.test('decodeInner and its helpers allocate nothing: their source has no allocating construct', async (t) => {
  const src = readFileSync(new URL('../../src/packet/decode.ts', import.meta.url), 'utf8');
  const start = src.indexOf('export function decodeInner(');
  const end = src.indexOf('export function ipv4HeaderChecksumOk(');
  t.ok(start > 0 && end > start);
  const body = src
    .slice(start, end)
    .split('\n')
    .filter((l) => !/^\s*(\*|\/\*\*)/.test(l)) // doc comments
    .map((l) => l.replace(/\/\/.*$/, ''))
    .join('\n');
  for (const bad of ['new ', '=>', 'function (', '`', "'", '"', '.slice(', '.subarray(', 'concat', 'toString']) {
    t.notOk(body.includes(bad), `no ${JSON.stringify(bad)}`);
  }
  // Indexing typed arrays is fine (src[0] = 0); array and object literals are not.
  t.notMatch(body, /(?:[=(,:?]|return)\s*\[/, 'no array literal');
  t.notMatch(body, /(?:[=(,:?]|return)\s*\{/, 'no object literal');
});

// ---------------------------------------------------------------------------------------------------------------
// Cross-check with tshark: its reading of each fixture, and its verdict on every checksum, must agree.


t.test(
  'tshark reads every inner fixture the way decodeInner does, and finds its checksums good',
  async (t) => {
    if (!haveTool(t, 'tshark', 'tshark', 'the independent dissector check')) return;
    const dir = mkdtempSync(join(tmpdir(), 'inner-tshark-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'in.txt'), allFixtures.map((f) => hexdump(f.buf)).join(''));
    // Link type 101: raw IP, no Ethernet, as GWLB carries it.
    t.equal(spawnSync('text2pcap', ['-q', '-l', '101', join(dir, 'in.txt'), join(dir, 'in.pcap')]).status, 0, 'text2pcap');
    const fields = [
      'ip.len', 'ipv6.plen', 'ip.frag_offset', 'ip.flags.mf', 'tcp.srcport', 'tcp.dstport', 'tcp.hdr_len', 'tcp.flags',
      'udp.srcport', 'udp.dstport', 'icmp.type', 'icmp.ident', 'icmpv6.type', 'icmpv6.echo.identifier',
      'ip.checksum.status', 'tcp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status',
    ];
    const r = spawnSync(
      'tshark',
      ['-r', join(dir, 'in.pcap'), '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE',
        '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])],
      { encoding: 'utf8' },
    );
    t.equal(r.status, 0, 'tshark');
    const lines = r.stdout.trimEnd().split('\n');
    t.equal(lines.length, FIXTURES.length);
    FIXTURES.forEach((fx, i) => {
      const v = Object.fromEntries((lines[i] as string).split('|').map((x, j) => [fields[j], x]));
      const p = decode(allFixtures[i]?.buf as Buffer, fx.protocolType);
      const name = fx.file;
      t.equal(Number(v['ip.len'] || 0) || Number(v['ipv6.plen']) + 40, p.ipLength, `${name} IP length`);
      if (v['ip.frag_offset']) t.equal(v['ip.frag_offset'] !== '0' || v['ip.flags.mf'] === '1', p.isFragment, `${name} fragment`);
      if (v['tcp.srcport'] && p.anomaly === P.OK) {
        t.equal(Number(v['tcp.srcport']), p.srcPort, `${name} TCP src port`);
        t.equal(Number(v['tcp.dstport']), p.dstPort, `${name} TCP dst port`);
        if (v['tcp.hdr_len']) {
          t.equal(Number(v['tcp.hdr_len']), p.payloadOffset - p.l4Offset, `${name} TCP header length`);
          t.equal(Number(v['tcp.flags']), p.tcpFlags, `${name} TCP flags`);
        }
      }
      if (v['udp.srcport'] && p.anomaly === P.OK) t.equal(Number(v['udp.srcport']), p.srcPort, `${name} UDP src port`);
      if (v['icmp.type']) t.equal(Number(v['icmp.type']), p.icmpType, `${name} ICMP type`);
      if (v['icmp.ident']) t.equal(Number(v['icmp.ident']), p.srcPort, `${name} ICMP identifier`);
      if (v['icmpv6.type']) t.equal(Number(v['icmpv6.type']), p.icmpType, `${name} ICMPv6 type`);
      if (v['icmpv6.echo.identifier']) t.equal(Number(v['icmpv6.echo.identifier']), p.srcPort, `${name} ICMPv6 identifier`);
      // 1 = good; fixtures were written with checksums computed outside this project.
      for (const c of ['ip.checksum.status', 'tcp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status']) {
        if (v[c]) t.equal(v[c], '1', `${name} ${c}`);
      }
    });
  },
);
