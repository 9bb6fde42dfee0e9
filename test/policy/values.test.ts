import t from 'tap';
import fc from 'fast-check';
import { isError, normalizeDomain, parseCidr, parseProtocol, parseRangeItem } from '../../src/policy/values.js';

t.test('parseCidr: hosts, networks, the boundary prefixes, IPv4-mapped IPv6', async (t) => {
  t.same(parseCidr('10.0.0.0/8'), { v4: true, addr: 0x0a000000, prefix: 8 });
  t.same(parseCidr('192.0.2.7'), { v4: true, addr: 0xc0000207, prefix: 32 }, 'a bare address is a /32');
  t.same(parseCidr('0.0.0.0/0'), { v4: true, addr: 0, prefix: 0 });
  t.same(parseCidr('255.255.255.255/32'), { v4: true, addr: 0xffffffff, prefix: 32 }, 'the top address stays unsigned');
  t.same(parseCidr('2001:db8::/32'), { v4: false, addr: 0x20010db8n << 96n, prefix: 32 });
  t.same(parseCidr('::/0'), { v4: false, addr: 0n, prefix: 0 });
  t.same(parseCidr('::1'), { v4: false, addr: 1n, prefix: 128 });
  t.same(parseCidr('::ffff:10.0.0.0/104'), { v4: true, addr: 0x0a000000, prefix: 8 }, '::ffff:a.b.c.d/96+n is a.b.c.d/n');
});

t.test('parseCidr refuses what is not a CIDR, and host bits below the prefix, saying what to write', async (t) => {
  for (const bad of ['', 'x', '10.0.0', '10.0.0.256', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/', '10.0.0.0/8/8', '::/129', '2001:db8::g', '10.0.0.0/ 8']) {
    t.ok(isError(parseCidr(bad)), JSON.stringify(bad));
  }
  t.match(parseCidr('10.1.2.3/8'), { error: /write 10\.0\.0\.0\/8 for the network or 10\.1\.2\.3\/32 for the host/ });
  t.match(parseCidr('2001:db8::1/32'), { error: /write 2001:db8::\/32 for the network/ });
});

t.test('parseCidr on IPv4 agrees with a plain mask computation for every prefix length', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (a, p) => {
      const text = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${p}`;
      const hostBits = BigInt(a) & ((1n << BigInt(32 - p)) - 1n);
      const r = parseCidr(text);
      if (hostBits !== 0n) return isError(r);
      return !isError(r) && r.v4 && r.addr === a && r.prefix === p;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

t.test('parseRangeItem: numbers and ranges within [0, max], any, $sets; refuses the rest', async (t) => {
  t.same(parseRangeItem(0, 'port', 65535), { kind: 'range', lo: 0, hi: 0 });
  t.same(parseRangeItem(65535, 'port', 65535), { kind: 'range', lo: 65535, hi: 65535 });
  t.same(parseRangeItem('0-65535', 'port', 65535), { kind: 'range', lo: 0, hi: 65535 });
  t.same(parseRangeItem(' 1024 - 2048 ', 'port', 65535), { kind: 'range', lo: 1024, hi: 2048 });
  t.same(parseRangeItem('80-80', 'port', 65535), { kind: 'range', lo: 80, hi: 80 });
  t.same(parseRangeItem('255', 'ICMP type', 255), { kind: 'range', lo: 255, hi: 255 });
  t.same(parseRangeItem('any', 'port', 65535), { kind: 'any' });
  t.same(parseRangeItem('$web', 'port', 65535), { kind: 'set', name: 'web' });
  for (const [v, max] of [[65536, 65535], [-1, 65535], [1.5, 65535], ['65536', 65535], ['256', 255], ['0-256', 255], ['x', 65535], ['', 65535], ['1-2-3', 65535], ['123456', 999999]] as const) {
    t.ok(isError(parseRangeItem(v, 'port', max)), `${JSON.stringify(v)} (max ${max})`);
  }
  t.match(parseRangeItem('2000-1000', 'port', 65535), { error: /backwards; write "1000-2000"/ });
  t.match(parseRangeItem('81-80', 'port', 65535), { error: /backwards/ }, 'backwards by one');
  t.match(parseRangeItem('1000:2000', 'port', 65535), { error: /ranges use "-": "1000-2000"/ });
});

t.test('parseProtocol: IANA names in any case, numbers 0-255, any', async (t) => {
  t.equal(parseProtocol('tcp'), 6);
  t.equal(parseProtocol('UDP'), 17);
  t.equal(parseProtocol('icmp'), 1);
  t.equal(parseProtocol('icmpv6'), 58);
  t.equal(parseProtocol('sctp'), 132);
  t.equal(parseProtocol(0), 0);
  t.equal(parseProtocol(255), 255);
  t.equal(parseProtocol('any'), 'any');
  for (const bad of [256, -1, 6.5, 'tcpx', '', '6']) t.ok(isError(parseProtocol(bad)), JSON.stringify(bad));
});

t.test('normalizeDomain: lowercase, one trailing dot dropped, nothing else changed', async (t) => {
  t.equal(normalizeDomain('Example.COM'), 'example.com');
  t.equal(normalizeDomain('example.com.'), 'example.com');
  t.equal(normalizeDomain('xn--bcher-kva.example'), 'xn--bcher-kva.example');
  t.equal(normalizeDomain('.'), '');
  t.equal(normalizeDomain(''), '');
  t.equal(normalizeDomain('a..'), 'a.', 'only one trailing dot');
});
