import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import {
  AWS_OPTION_CLASS,
  decodeGeneve,
  encodeGeneve,
  encodeGeneveHeader,
  encodeGeneveOption,
  formatEndpointId,
  GENEVE_ANOMALY,
  GENEVE_ANOMALY_NAMES,
  GENEVE_PORT,
  GWLB_GENEVE_HEADER_LENGTH,
  GWLB_MAX_DATAGRAM_BYTES,
  GWLB_MAX_INNER_BYTES,
  GWLB_OVERHEAD_BYTES,
  parseEndpointId,
} from '../../src/geneve/codec.js';
import { createGeneveHeader, type GeneveHeader } from '../../src/geneve/types.js';
import { decodeInner, PACKET_ANOMALY } from '../../src/packet/decode.js';
import { createInnerPacket } from '../../src/packet/types.js';
import { hex, hexdump, loadHex } from '../fixtures/hex.js';
import { haveTool } from '../helpers/tools.js';

const A = GENEVE_ANOMALY;

function decode(buf: Buffer, off = 0, len = buf.length - off): GeneveHeader {
  const h = createGeneveHeader();
  const rc = decodeGeneve(buf, off, len, h);
  if (rc !== h.anomaly) throw new Error(`return value ${rc} differs from out.anomaly ${h.anomaly}`);
  return h;
}

/** The AWS option values every "standard" fixture carries, written by hand from the annotations. */
const REORDERED_FIELDS = {
  version: 0,
  oam: false,
  critical: false,
  protocolType: 0x0800,
  vni: 0,
  optionCount: 3,
  hasEndpointId: true,
  endpointIdHi: 0x12345678,
  endpointIdLo: 0x9abcdef0,
  hasAttachmentId: true,
  attachmentIdHi: 0,
  attachmentIdLo: 7,
  hasFlowCookie: true,
  flowCookie: 0xdeadbeef,
  unknownOptionCount: 0,
};

interface FixtureCase {
  file: string;
  behaviour: string;
  anomaly: number;
  fields: Partial<GeneveHeader>;
}

const FIXTURES: FixtureCase[] = [
  {
    file: 'aws-options-reordered.hex',
    behaviour: 'AWS options in the order 3, 1, 2 decode to the same values as in any order',
    anomaly: A.OK,
    fields: { headerLength: 40, ...REORDERED_FIELDS },
  },
  {
    file: 'gwlb-ipv6-icmpv6.hex',
    behaviour: 'an IPv6 inner packet is accepted and 64-bit ids and cookies with the top bit set stay unsigned',
    anomaly: A.OK,
    fields: {
      headerLength: 40,
      protocolType: 0x86dd,
      optionCount: 3,
      hasEndpointId: true,
      endpointIdHi: 0xffffffff,
      endpointIdLo: 0xffffffff,
      hasAttachmentId: true,
      attachmentIdHi: 0,
      attachmentIdLo: 0,
      hasFlowCookie: true,
      flowCookie: 0x80000001,
    },
  },
  {
    file: 'unknown-option-kept.hex',
    behaviour: 'an unknown non-critical option is counted, skipped, and included in the header length',
    anomaly: A.OK,
    fields: {
      headerLength: 48,
      optionCount: 4,
      unknownOptionCount: 1,
      hasEndpointId: true,
      endpointIdHi: 0x12345678,
      endpointIdLo: 0x9abcdef0,
      hasFlowCookie: true,
      flowCookie: 42,
    },
  },
  {
    file: 'unknown-critical-option.hex',
    behaviour: 'an unknown option with the critical bit drops the packet',
    anomaly: A.CRITICAL_OPTION_UNKNOWN,
    fields: { critical: true, unknownOptionCount: 1, optionCount: 4 },
  },
  {
    file: 'aws-critical-type.hex',
    behaviour: 'AWS class type 0x81 is not type 1 with a flag: it is an unknown critical option and drops the packet',
    anomaly: A.CRITICAL_OPTION_UNKNOWN,
    fields: { hasEndpointId: false, endpointIdHi: 0, unknownOptionCount: 1 },
  },
  { file: 'oam.hex', behaviour: 'a control packet (O bit) is dropped', anomaly: A.OAM_PACKET, fields: { oam: true } },
  { file: 'version1.hex', behaviour: 'version 1 is dropped', anomaly: A.BAD_VERSION, fields: { version: 1 } },
  {
    file: 'optlen-exceeds-datagram.hex',
    behaviour: 'an Opt Len larger than the datagram is refused before any option is read',
    anomaly: A.OPT_LEN_EXCEEDS_DATAGRAM,
    fields: { headerLength: 260, optionCount: 0, hasEndpointId: false },
  },
  {
    file: 'option-overrun.hex',
    behaviour: 'an option whose data runs past Opt Len is refused',
    anomaly: A.OPTION_OVERRUN,
    fields: { headerLength: 36, optionCount: 2, hasFlowCookie: false },
  },
  {
    file: 'option-underrun-overrun.hex',
    behaviour: 'options that stop short of Opt Len are refused when the leftover bytes cannot be an option',
    anomaly: A.OPTION_OVERRUN,
    fields: { headerLength: 44, optionCount: 3 },
  },
  {
    file: 'option-underrun-version.hex',
    behaviour: 'options that stop short of Opt Len are refused by the inner version check when the leftover parses',
    anomaly: A.INNER_VERSION_MISMATCH,
    fields: { headerLength: 44, optionCount: 4, unknownOptionCount: 1 },
  },
  {
    file: 'reserved-and-r-bits.hex',
    behaviour: 'reserved bits and R bits are ignored, and the VNI mask does not take in the reserved byte',
    anomaly: A.OK,
    fields: { headerLength: 40, ...REORDERED_FIELDS, vni: 0x123456 },
  },
  {
    file: 'inner-version-mismatch.hex',
    behaviour: 'an IPv4 packet under Protocol Type 0x86DD is refused',
    anomaly: A.INNER_VERSION_MISMATCH,
    fields: { protocolType: 0x86dd, optionCount: 3 },
  },
  {
    file: 'unsupported-protocol.hex',
    behaviour: 'a Protocol Type other than IPv4 or IPv6 is refused',
    anomaly: A.UNSUPPORTED_PROTOCOL,
    fields: { protocolType: 0x6558 },
  },
  {
    file: 'inner-missing.hex',
    behaviour: 'a header with nothing after it is refused, with its options still decoded',
    anomaly: A.INNER_MISSING,
    fields: { headerLength: 40, hasEndpointId: true, hasFlowCookie: true, flowCookie: 42 },
  },
  {
    file: 'aws-option-bad-length.hex',
    behaviour: 'an AWS endpoint id option of the wrong length is refused',
    anomaly: A.AWS_OPTION_BAD_LENGTH,
    fields: { hasEndpointId: false },
  },
];

t.test('constants match RFC 8926 and the GWLB numbers', async (t) => {
  t.equal(GENEVE_PORT, 6081);
  t.equal(AWS_OPTION_CLASS, 0x0108);
  t.equal(GWLB_GENEVE_HEADER_LENGTH, 40);
  t.equal(GWLB_OVERHEAD_BYTES, 20 + 8 + 40);
  t.equal(GWLB_MAX_INNER_BYTES, 8500);
  t.equal(GWLB_MAX_DATAGRAM_BYTES, 8568);
});

t.test('every anomaly code has its name at its index, with no gaps', async (t) => {
  const entries = Object.entries(GENEVE_ANOMALY);
  t.equal(GENEVE_ANOMALY_NAMES.length, entries.length);
  for (const [name, code] of entries) t.equal(GENEVE_ANOMALY_NAMES[code], name);
  t.equal(GENEVE_ANOMALY_NAMES[0], 'OK');
});

for (const fx of FIXTURES) {
  t.test(`${fx.file}: ${fx.behaviour}`, async (t) => {
    const buf = loadHex(`geneve/${fx.file}`);
    const h = decode(buf);
    t.equal(GENEVE_ANOMALY_NAMES[h.anomaly], GENEVE_ANOMALY_NAMES[fx.anomaly], 'anomaly');
    t.equal(h.offset, 0);
    t.match(h, fx.fields);
  });
}

t.test('a fixture placed at an offset inside a larger buffer decodes the same, relative to that offset', async (t) => {
  const pkt = loadHex('geneve/aws-options-reordered.hex');
  const big = Buffer.alloc(pkt.length + 30, 0xee);
  pkt.copy(big, 13);
  const h = decode(big, 13, pkt.length);
  t.equal(h.anomaly, A.OK);
  t.equal(h.offset, 13);
  t.match(h, { headerLength: 40, ...REORDERED_FIELDS });
  t.equal(big.readUInt8(13 + h.headerLength), 0x45, 'inner packet starts at offset + headerLength');
});

t.test('the endpoint id of the fixtures formats as the vpce- id gwlbtun prints', async (t) => {
  const h = decode(loadHex('geneve/aws-options-reordered.hex'));
  t.equal(formatEndpointId(h.endpointIdHi, h.endpointIdLo), 'vpce-0123456789abcdef0');
  const g = decode(loadHex('geneve/gwlb-ipv6-icmpv6.hex'));
  t.equal(formatEndpointId(g.endpointIdHi, g.endpointIdLo), 'vpce-0ffffffffffffffff');
});

t.test('fewer than 8 bytes is TOO_SHORT, whatever they are', async (t) => {
  for (let n = 0; n < 8; n++) t.equal(decode(Buffer.alloc(8, 0), 0, n).anomaly, A.TOO_SHORT, `${n} bytes`);
});

t.test('a datagram cut inside its options is refused as OPT_LEN_EXCEEDS_DATAGRAM', async (t) => {
  const pkt = loadHex('geneve/aws-options-reordered.hex');
  for (const n of [8, 12, 30, 39]) t.equal(decode(pkt, 0, n).anomaly, A.OPT_LEN_EXCEEDS_DATAGRAM, `${n} bytes`);
  t.equal(decode(pkt, 0, 40).anomaly, A.INNER_MISSING, 'the whole header but no inner byte');
  t.equal(decode(pkt, 0, 41).anomaly, A.OK, 'one inner byte is enough for GENEVE');
});

t.test('a header without options or AWS options is accepted and says which options were absent', async (t) => {
  const buf = hex(`
    00            # Ver 0, Opt Len 0
    00 08 00      # flags 0, Protocol Type 0x0800
    00 00 00 00   # VNI 0, Reserved
    45 00 00 14   # first word of an IPv4 header
  `);
  const h = decode(buf);
  t.equal(h.anomaly, A.OK);
  t.match(h, { headerLength: 8, optionCount: 0, hasEndpointId: false, hasAttachmentId: false, hasFlowCookie: false });
});

t.test('a repeated AWS option overwrites the earlier one (last wins, as in gwlbtun)', async (t) => {
  const buf = hex(`
    06 00 08 00 00 00 00 00   # Ver 0, Opt Len 6 (24 bytes), IPv4, VNI 0
    01 08 03 01 00 00 00 01   # flow cookie 1
    01 08 03 01 00 00 00 02   # flow cookie 2
    01 08 03 01 00 00 00 03   # flow cookie 3
    45
  `);
  const h = decode(buf);
  t.equal(h.anomaly, A.OK);
  t.equal(h.flowCookie, 3);
  t.equal(h.optionCount, 3);
});

t.test('every AWS option type is held to its own length', async (t) => {
  const cases: [string, string][] = [
    ['attachment id with Length 1', '01 08 02 01 00 00 00 00'],
    ['flow cookie with Length 2', '01 08 03 02 00 00 00 00 00 00 00 00'],
    ['flow cookie with Length 0', '01 08 03 00'],
    ['endpoint id with Length 3', '01 08 01 03 00 00 00 00 00 00 00 00 00 00 00 00'],
  ];
  for (const [name, option] of cases) {
    const o = hex(option);
    const buf = Buffer.concat([hex(`${(o.length / 4).toString(16).padStart(2, '0')} 00 08 00 00 00 00 00`), o, hex('45')]);
    t.equal(decode(buf).anomaly, A.AWS_OPTION_BAD_LENGTH, name);
  }
});

t.test('AWS class types other than 1, 2, 3 without the critical bit are unknown options, kept', async (t) => {
  const buf = hex(`
    02 00 08 00 00 00 00 00   # Opt Len 2
    01 08 04 01 00 00 00 00   # Class 0x0108, Type 4, Length 1
    45
  `);
  const h = decode(buf);
  t.equal(h.anomaly, A.OK);
  t.equal(h.unknownOptionCount, 1);
});

t.test('the critical bit is honoured even when the C flag is clear', async (t) => {
  const buf = hex(`
    01 00 08 00 00 00 00 00   # Opt Len 1, C = 0
    ff ff 80 00               # Class 0xFFFF, Type 0x80 (critical), Length 0
    45
  `);
  t.equal(decode(buf).anomaly, A.CRITICAL_OPTION_UNKNOWN);
});

t.test('an 8500-byte inner packet in an 8568-byte datagram is accepted whole', async (t) => {
  const head = loadHex('geneve/max-inner-header.hex');
  const payload = Buffer.alloc(GWLB_MAX_INNER_BYTES - 20 - 8, 0x5a);
  const udpPayload = Buffer.concat([head, payload]);
  t.equal(20 + 8 + udpPayload.length, GWLB_MAX_DATAGRAM_BYTES, 'fixture makes a maximum-size datagram');
  const h = decode(udpPayload);
  t.equal(h.anomaly, A.OK);
  t.equal(h.headerLength, 40);
  const p = createInnerPacket();
  t.equal(decodeInner(udpPayload, h.headerLength, udpPayload.length - h.headerLength, h.protocolType, p), PACKET_ANOMALY.OK);
  t.equal(p.ipLength, 8500);
  t.equal(p.payloadLength, 8472);
  t.equal(p.payloadOffset + p.payloadLength, udpPayload.length);
});

t.test('formatEndpointId pads to 17 hex digits the way gwlbtun does', async (t) => {
  t.equal(formatEndpointId(0, 0), 'vpce-00000000000000000');
  t.equal(formatEndpointId(0, 1), 'vpce-00000000000000001');
  t.equal(formatEndpointId(0x00abcdef, 0x01234567), 'vpce-000abcdef01234567');
  t.equal(formatEndpointId(-1, -1), 'vpce-0ffffffffffffffff', 'signed 32-bit inputs read as unsigned');
});

t.test('parseEndpointId accepts exactly what formatEndpointId produces, either case', async (t) => {
  t.same(parseEndpointId('vpce-0123456789abcdef0'), { hi: 0x12345678, lo: 0x9abcdef0 });
  t.same(parseEndpointId('vpce-0123456789ABCDEF0'), { hi: 0x12345678, lo: 0x9abcdef0 });
  t.same(parseEndpointId('vpce-0ffffffffffffffff'), { hi: 0xffffffff, lo: 0xffffffff });
  for (const bad of [
    'vpce-123456789abcdef01', // 17 significant digits: more than 64 bits
    'vpce-0123456789abcdef', // 16 digits
    'vpce-0123456789abcdef01', // 18 digits
    'vpce-0123456789abcdefg',
    '0123456789abcdef0',
    'VPCE-0123456789abcdef0',
    'vpce_0123456789abcdef0',
    'vpce-0123456789abcde f',
    '',
  ]) {
    t.equal(parseEndpointId(bad), undefined, JSON.stringify(bad));
  }
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (hi, lo) => {
      const s = formatEndpointId(hi, lo);
      t.equal(s.length, 22);
      t.same(parseEndpointId(s), { hi, lo });
    }),
    { numRuns: 200 },
  );
});

t.test('encodeGeneveHeader writes the bytes of the hand-annotated fixtures', async (t) => {
  const reordered = encodeGeneveHeader({
    awsOptions: [3, 1, 2],
    flowCookie: 0xdeadbeef,
    endpointIdHi: 0x12345678,
    endpointIdLo: 0x9abcdef0,
    attachmentIdLo: 7,
  });
  t.same(reordered, loadHex('geneve/aws-options-reordered.hex').subarray(0, 40));
  const v6 = encodeGeneveHeader({
    protocolType: 0x86dd,
    endpointIdHi: 0xffffffff,
    endpointIdLo: 0xffffffff,
    flowCookie: 0x80000001,
  });
  t.same(v6, loadHex('geneve/gwlb-ipv6-icmpv6.hex').subarray(0, 40));
  const withUnknown = encodeGeneveHeader({
    awsOptions: [1, 2],
    endpointIdHi: 0x12345678,
    endpointIdLo: 0x9abcdef0,
    extraOptions: Buffer.concat([
      encodeGeneveOption(0xffff, 0x01, hex('ca fe ba be')),
      encodeGeneveOption(AWS_OPTION_CLASS, 3, hex('00 00 00 2a')),
    ]),
  });
  t.same(withUnknown, loadHex('geneve/unknown-option-kept.hex').subarray(0, 48));
});

t.test('encodeGeneveHeader sets the C bit when an extra option is critical, and writes the flags asked for', async (t) => {
  const critical = encodeGeneveHeader({ extraOptions: encodeGeneveOption(0xffff, 0x81) });
  t.equal(critical.readUInt8(1) & 0x40, 0x40);
  t.equal(decode(Buffer.concat([critical, hex('45')])).anomaly, A.CRITICAL_OPTION_UNKNOWN);
  const oam = encodeGeneveHeader({ oam: true });
  t.equal(decode(Buffer.concat([oam, hex('45')])).anomaly, A.OAM_PACKET);
  const v1 = encodeGeneveHeader({ version: 1 });
  t.equal(decode(Buffer.concat([v1, hex('45')])).anomaly, A.BAD_VERSION);
  const plain = encodeGeneveHeader({ awsOptions: [] });
  t.same(plain, hex('00 00 08 00 00 00 00 00'));
});

t.test('encodeGeneveHeader refuses input it cannot encode', async (t) => {
  t.throws(() => encodeGeneveHeader({ extraOptions: new Uint8Array(3) }), RangeError);
  t.throws(() => encodeGeneveHeader({ awsOptions: [4] }), RangeError);
  t.throws(() => encodeGeneveHeader({ extraOptions: new Uint8Array(252) }), RangeError, 'over 63 words');
  t.throws(() => encodeGeneveOption(0xffff, 1, new Uint8Array(128)), RangeError, 'over 31 words of data');
});

// ---------------------------------------------------------------------------------------------------------------
// Properties.

const HEADER_FIELDS: readonly (keyof GeneveHeader)[] = Object.keys(createGeneveHeader()) as (keyof GeneveHeader)[];

/** A random well-formed GWLB-style header + inner bytes, and what it encodes. */
const arbEncoded = fc
  .record({
    protocolType: fc.constantFrom(0x0800, 0x86dd),
    vni: fc.integer({ min: 0, max: 0xffffff }),
    reservedBits: fc.integer({ min: 0, max: 0x3f }),
    reservedByte: fc.integer({ min: 0, max: 0xff }),
    endpointIdHi: fc.integer({ min: 0, max: 0xffffffff }),
    endpointIdLo: fc.integer({ min: 0, max: 0xffffffff }),
    attachmentIdHi: fc.integer({ min: 0, max: 0xffffffff }),
    attachmentIdLo: fc.integer({ min: 0, max: 0xffffffff }),
    flowCookie: fc.integer({ min: 0, max: 0xffffffff }),
    awsOptions: fc.shuffledSubarray([1, 2, 3]),
    extra: fc.array(
      fc.record({
        optClass: fc.integer({ min: 0, max: 0xffff }).filter((c) => c !== AWS_OPTION_CLASS),
        type: fc.integer({ min: 0, max: 0x7f }),
        data: fc.uint8Array({ maxLength: 16 }),
        rBits: fc.integer({ min: 0, max: 7 }),
      }),
      { maxLength: 3 },
    ),
    innerTail: fc.uint8Array({ maxLength: 40 }),
  })
  .map((r) => {
    const extraOptions = Buffer.concat(r.extra.map((o) => encodeGeneveOption(o.optClass, o.type, o.data, o.rBits)));
    const inner = Buffer.concat([Buffer.of(r.protocolType === 0x0800 ? 0x45 : 0x60), r.innerTail]);
    const opts = {
      protocolType: r.protocolType,
      vni: r.vni,
      reservedBits: r.reservedBits,
      reservedByte: r.reservedByte,
      endpointIdHi: r.endpointIdHi,
      endpointIdLo: r.endpointIdLo,
      attachmentIdHi: r.attachmentIdHi,
      attachmentIdLo: r.attachmentIdLo,
      flowCookie: r.flowCookie,
      awsOptions: r.awsOptions,
      extraOptions,
    };
    return { r, bytes: encodeGeneve(opts, inner), headerLength: 8 + r.awsOptions.reduce((n, x) => n + (x === 3 ? 8 : 12), 0) + extraOptions.length };
  });

/** An arbitrary buffer with a consistent (off, len) window inside it. */
const arbWindow = fc
  .uint8Array({ maxLength: 400 })
  .chain((a) => fc.tuple(fc.constant(Buffer.from(a)), fc.integer({ min: 0, max: a.length })))
  .chain(([b, off]) => fc.tuple(fc.constant(b), fc.constant(off), fc.integer({ min: 0, max: b.length - off })));

/** A valid packet with a few bytes overwritten: reaches the deep checks more often than uniform noise. */
const arbMutated = fc
  .tuple(arbEncoded, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat())
  .map(([e, edits, cut]) => {
    const b = Buffer.from(e.bytes);
    for (const [i, v] of edits) b[i % b.length] = v;
    return { b, len: b.length - (cut % 3 === 0 ? cut % b.length : 0) };
  });

t.test('decodeGeneve gives back every value encodeGeneveHeader wrote', async (t) => {
  fc.assert(
    fc.property(arbEncoded, ({ r, bytes, headerLength }) => {
      const h = decode(bytes);
      const aws = new Set(r.awsOptions);
      // Where the (last) cookie's data sits: AWS options come first, in order; 12 bytes for ids, 8 for the cookie.
      let cookieOffset = -1;
      let at = 8;
      for (const x of r.awsOptions) {
        if (x === 3) cookieOffset = at + 4;
        at += x === 3 ? 8 : 12;
      }
      const expected = {
        anomaly: A.OK,
        offset: 0,
        headerLength,
        version: 0,
        oam: false,
        critical: false,
        protocolType: r.protocolType,
        vni: r.vni,
        optionCount: r.awsOptions.length + r.extra.length,
        hasEndpointId: aws.has(1),
        endpointIdHi: aws.has(1) ? r.endpointIdHi : 0,
        endpointIdLo: aws.has(1) ? r.endpointIdLo : 0,
        hasAttachmentId: aws.has(2),
        attachmentIdHi: aws.has(2) ? r.attachmentIdHi : 0,
        attachmentIdLo: aws.has(2) ? r.attachmentIdLo : 0,
        hasFlowCookie: aws.has(3),
        flowCookie: aws.has(3) ? r.flowCookie : 0,
        flowCookieOffset: cookieOffset,
        unknownOptionCount: r.extra.length,
      };
      if (!t.same({ ...h }, expected)) throw new Error('mismatch');
    }),
    { numRuns: 300 },
  );
});

t.test('decodeGeneve never throws on arbitrary bytes and always returns a named anomaly', async (t) => {
  const h = createGeneveHeader();
  const check = (b: Buffer, off: number, len: number): void => {
    const rc = decodeGeneve(b, off, len, h);
    if (rc !== h.anomaly || GENEVE_ANOMALY_NAMES[rc] === undefined) throw new Error(`bad code ${rc}`);
    if (rc === A.OK) {
      // What OK promises the data plane.
      if (h.headerLength >= len || h.headerLength % 4 !== 0) throw new Error('OK with a header that does not fit');
      const v = b.readUInt8(off + h.headerLength) >> 4;
      if (v !== (h.protocolType === 0x0800 ? 4 : 6)) throw new Error('OK with a mismatched inner version');
    }
  };
  fc.assert(fc.property(arbWindow, ([b, off, len]) => check(b, off, len)), { numRuns: 3000 });
  fc.assert(fc.property(arbMutated, ({ b, len }) => check(b, 0, len)), { numRuns: 3000 });
  t.pass('no throw');
});

t.test('every field is reset: decoding garbage after a good packet leaves nothing of the good one', async (t) => {
  const good = loadHex('geneve/unknown-option-kept.hex');
  fc.assert(
    fc.property(fc.oneof(arbWindow, arbMutated.map(({ b, len }) => [b, 0, len] as const)), ([b, off, len]) => {
      const used = createGeneveHeader();
      decodeGeneve(good, 0, good.length, used);
      const fresh = createGeneveHeader();
      decodeGeneve(b, off, len, used);
      decodeGeneve(b, off, len, fresh);
      for (const k of HEADER_FIELDS) if (used[k] !== fresh[k]) throw new Error(`field ${k} kept ${String(used[k])}`);
    }),
    { numRuns: 2000 },
  );
  t.pass('no leftovers');
});

// The measured check (scavenges during millions of decodes) is test/geneve/alloc.test.ts; this one keeps obvious
// allocating constructs out of the source (array literals included: an index access "buf[i]" is fine).
t.test('decodeGeneve allocates nothing: its source has no allocating construct', async (t) => {
  const src = readFileSync(new URL('../../src/geneve/codec.ts', import.meta.url), 'utf8');
  const start = src.indexOf('export function decodeGeneve(');
  const end = src.indexOf('\n}\n', start);
  t.ok(start > 0 && end > start);
  const body = src
    .slice(start, end)
    .split('\n')
    .map((l) => l.replace(/\/\/.*$/, ''))
    .join('\n');
  for (const bad of ['new ', '=>', 'function (', '`', "'", '"', '= [', '([', ', [', '.slice(', '.subarray(', 'concat', 'toString']) {
    t.notOk(body.slice(body.indexOf('{')).includes(bad), `no ${JSON.stringify(bad)} in the body`);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Cross-check with an independent dissector. tshark reads each fixture (wrapped in IPv4/UDP to port 6081); the
// fixed-header fields and the option walk must agree with ours.


t.test(
  'tshark reads every fixture header the way decodeGeneve does',
  async (t) => {
    if (!haveTool(t, 'tshark', 'tshark', 'the independent dissector check')) return;
    const dir = mkdtempSync(join(tmpdir(), 'geneve-tshark-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const bufs = FIXTURES.map((f) => loadHex(`geneve/${f.file}`));
    writeFileSync(join(dir, 'in.txt'), bufs.map((b) => hexdump(b)).join(''));
    const t2p = spawnSync('text2pcap', ['-q', '-4', '10.1.1.1,10.1.1.2', '-u', '40000,6081', join(dir, 'in.txt'), join(dir, 'in.pcap')]);
    t.equal(t2p.status, 0, 'text2pcap');
    const fields = ['geneve.version', 'geneve.flags.oam', 'geneve.flags.critical', 'geneve.proto_type', 'geneve.vni', 'geneve.option.class', 'geneve.option.length'];
    const r = spawnSync('tshark', ['-r', join(dir, 'in.pcap'), '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
    t.equal(r.status, 0, 'tshark');
    const lines = r.stdout.trimEnd().split('\n');
    t.equal(lines.length, FIXTURES.length);
    FIXTURES.forEach((fx, i) => {
      const [ver, oam, crit, proto, vni, classes, lengths] = (lines[i] as string).split('|');
      const h = decode(bufs[i] as Buffer);
      t.equal(Number(ver), h.version, `${fx.file} version`);
      t.equal(oam === '1', h.oam, `${fx.file} O`);
      t.equal(crit === '1', h.critical, `${fx.file} C`);
      t.equal(Number(proto), h.protocolType, `${fx.file} protocol type`);
      t.equal(Number(vni), h.vni, `${fx.file} VNI`);
      // tshark lists the options length first, then one entry per option it could read.
      t.equal(Number((lengths ?? '').split(',')[0]), h.headerLength - 8, `${fx.file} Opt Len`);
      // Where our walk covered every option tshark could read, the counts agree. (After a critical unknown
      // option we stop and tshark goes on, so those fixtures are left out of this comparison.)
      const walkedAll: number[] = [A.OK, A.OPTION_OVERRUN, A.UNSUPPORTED_PROTOCOL, A.INNER_MISSING, A.INNER_VERSION_MISMATCH];
      if (walkedAll.includes(h.anomaly)) {
        t.equal(classes === '' ? 0 : (classes ?? '').split(',').length, h.optionCount, `${fx.file} option count`);
      }
    });
  },
);
