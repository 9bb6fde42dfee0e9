import { isIP } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { formatIp, ipv4ToU32, isIpv4Mapped, parseIp, tryIpv4ToU32, tryParseIp, u32ToIpv4 } from '../../src/packet/address.js';

t.test('ipv4ToU32 reads dotted quads as unsigned 32-bit numbers', async (t) => {
  t.equal(ipv4ToU32('0.0.0.0'), 0);
  t.equal(ipv4ToU32('10.0.0.1'), 0x0a000001);
  t.equal(ipv4ToU32('192.168.1.10'), 0xc0a8010a);
  t.equal(ipv4ToU32('255.255.255.255'), 0xffffffff, 'no sign bit');
});

t.test('ipv4ToU32 refuses anything but four decimal parts of 0-255 without leading zeros', async (t) => {
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1..2.3', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.-4', '0x1.2.3.4', '1.2.3.4/32', '::1']) {
    t.equal(tryIpv4ToU32(bad), undefined, JSON.stringify(bad));
    t.throws(() => ipv4ToU32(bad), RangeError);
  }
});

t.test('u32ToIpv4 writes dotted quads, including for values with the top bit set', async (t) => {
  t.equal(u32ToIpv4(0x0a000001), '10.0.0.1');
  t.equal(u32ToIpv4(0xffffffff), '255.255.255.255');
  t.equal(u32ToIpv4(-1), '255.255.255.255', 'a signed 32-bit value reads as unsigned');
  fc.assert(fc.property(fc.ipV4(), (s) => u32ToIpv4(ipv4ToU32(s)) === s));
});

t.test('parseIp stores IPv4 IPv4-mapped, the same words as the ::ffff: form', async (t) => {
  t.same(Array.from(parseIp('10.0.0.1')), [0, 0, 0xffff, 0x0a000001]);
  t.same(Array.from(parseIp('::ffff:10.0.0.1')), [0, 0, 0xffff, 0x0a000001]);
  t.same(Array.from(parseIp('::ffff:a00:1')), [0, 0, 0xffff, 0x0a000001]);
  t.ok(isIpv4Mapped(parseIp('10.0.0.1')));
  t.notOk(isIpv4Mapped(parseIp('::1')));
});

t.test('parseIp reads every RFC 4291 §2.2 text form', async (t) => {
  const cases: [string, number[]][] = [
    ['::', [0, 0, 0, 0]],
    ['::1', [0, 0, 0, 1]],
    ['1::', [0x00010000, 0, 0, 0]],
    ['2001:db8::1', [0x20010db8, 0, 0, 1]],
    ['2001:DB8::A:B', [0x20010db8, 0, 0, 0x000a000b]],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', [0x20010db8, 0, 0, 1]],
    ['fe80::1:2:3:4', [0xfe800000, 0, 0x00010002, 0x00030004]],
    ['1:2:3:4:5:6:7:8', [0x00010002, 0x00030004, 0x00050006, 0x00070008]],
    ['1:2:3:4:5:6:7::', [0x00010002, 0x00030004, 0x00050006, 0x00070000]],
    ['::2:3:4:5:6:7:8', [0x00000002, 0x00030004, 0x00050006, 0x00070008]],
    ['64:ff9b::192.0.2.33', [0x0064ff9b, 0, 0, 0xc0000221]],
    ['1:2:3:4:5:6:1.2.3.4', [0x00010002, 0x00030004, 0x00050006, 0x01020304]],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
  ];
  for (const [s, words] of cases) t.same(Array.from(parseIp(s)), words, s);
});

t.test('parseIp refuses malformed text, zones and prefixes', async (t) => {
  for (const bad of [
    '', ':', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1::2::3', '12345::', 'g::', '1:', ':1', '1:2:3:4:5:6:7:8::',
    '::1%eth0', '10.0.0.0/8', 'fd00::/8', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3', '::1.2.3.4:5', 'localhost', ' ::1',
  ]) {
    t.equal(tryParseIp(bad), undefined, JSON.stringify(bad));
    t.throws(() => parseIp(bad), RangeError);
  }
});

t.test('parseIp accepts exactly the strings node:net isIP accepts, over a fuzzed alphabet', async (t) => {
  // node:net is an independent implementation of the same grammar (zones aside, which the alphabet excludes).
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.'), maxLength: 24 }), (s) => {
      const ours = tryParseIp(s) !== undefined;
      if (ours !== (isIP(s) !== 0)) throw new Error(`${JSON.stringify(s)}: ours ${ours}, node ${isIP(s)}`);
    }),
    { numRuns: 20000 },
  );
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (s) => {
      if (tryParseIp(s) === undefined) throw new Error(`refused ${s}`);
    }),
  );
  t.pass('same verdicts');
});

t.test('formatIp writes RFC 5952 canonical text', async (t) => {
  const cases: [string, string][] = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3: the first of two equal runs
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // §4.2.3: the longest run
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: a single zero group is not compressed
    ['2001:DB8::0001', '2001:db8::1'], // §4.3 lowercase, §4.1 no leading zeros
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fd00::1', 'fd00::1'],
    ['::ffff:10.0.0.1', '10.0.0.1'], // IPv4-mapped is how this project stores IPv4
    ['1.2.3.4', '1.2.3.4'],
  ];
  for (const [input, out] of cases) t.equal(formatIp(parseIp(input)), out, input);
});

t.test('formatIp agrees with the WHATWG URL serializer (an independent RFC 5952 writer) on random addresses', async (t) => {
  const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (g) => {
      const words = Uint32Array.from([0, 1, 2, 3], (i) => (((g[2 * i] as number) << 16) | (g[2 * i + 1] as number)) >>> 0);
      const ours = formatIp(words);
      if (isIpv4Mapped(words)) {
        if (ours !== u32ToIpv4(words[3] as number)) throw new Error(ours);
        return;
      }
      const full = g.map((x) => x.toString(16)).join(':');
      const url = new URL(`http://[${full}]/`).hostname.slice(1, -1);
      if (ours !== url) throw new Error(`${full}: ours ${ours}, URL ${url}`);
      if (!Array.from(parseIp(ours)).every((w, i) => w === words[i])) throw new Error(`round trip ${ours}`);
    }),
    { numRuns: 3000 },
  );
  t.pass('agrees');
});
