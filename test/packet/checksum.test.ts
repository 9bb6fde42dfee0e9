/**
 * The Internet checksum (src/packet/checksum.ts) against values computed independently of it: the worked example
 * of RFC 1071 §3, and an IPv4 header whose checksum was computed by a separate Python implementation
 * (sum of struct.unpack('!10H') words, folded and complemented).
 */
import t from 'tap';
import { fold, pseudoSumV4, pseudoSumV6, sum16 } from '../../src/packet/checksum.js';

t.test('RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (one\'s-complement sum, before complement)', async (t) => {
  const b = Buffer.from('0001f203f4f5f6f7', 'hex');
  t.equal(fold(sum16(b, 0, b.length)), ~0xddf2 & 0xffff);
  t.equal(fold(sum16(b, 0, 4, sum16(b, 4, 4))), ~0xddf2 & 0xffff, 'partial sums add up (§2(B) associativity)');
});

t.test('an IPv4 header with a checksum computed elsewhere verifies to zero and recomputes to that value', async (t) => {
  // 45 00 00 54 a6 f2 40 00 40 01 [7f b4] 0a 00 00 01 0a 00 00 02 — an ICMP echo header, checksum 0x7fb4 (Python).
  const hdr = Buffer.from('45000054a6f2400040017fb40a0000010a000002', 'hex');
  t.equal(fold(sum16(hdr, 0, 20)), 0, 'a correct header sums to all ones');
  const zeroed = Buffer.from(hdr);
  zeroed.writeUInt16BE(0, 10);
  t.equal(fold(sum16(zeroed, 0, 20)), 0x7fb4);
});

t.test('an odd trailing byte is padded with zero on the right (RFC 1071 §4.1)', async (t) => {
  t.equal(sum16(Buffer.from([0xab]), 0, 1), 0xab00);
  t.equal(sum16(Buffer.from([0x12, 0x34, 0xab]), 0, 3), 0x1234 + 0xab00);
  t.equal(sum16(Buffer.from([0xff, 0x12, 0x34, 0xab]), 1, 3), 0x1234 + 0xab00, 'from an odd offset too');
});

t.test('fold carries repeatedly and complements; 0xffff folds to zero', async (t) => {
  t.equal(fold(0x1fffe), 0, '0xfffe + 1 = 0xffff, complemented');
  t.equal(fold(0x2_0001), ~0x0003 & 0xffff);
  t.equal(fold(0), 0xffff);
});

t.test('pseudo-header sums match the words they stand for', async (t) => {
  // 10.0.0.1 → 10.0.0.2, UDP, length 28: words 0a00 0001 0a00 0002 0011 001c
  t.equal(pseudoSumV4(0x0a000001, 0x0a000002, 17, 28), 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x0011 + 0x001c);
  const src = new Uint32Array([0x20010db8, 0, 0, 1]);
  const dst = new Uint32Array([0x20010db8, 0, 0, 2]);
  t.equal(pseudoSumV6(src, dst, 58, 0x10008), 0x2001 + 0x0db8 + 1 + 0x2001 + 0x0db8 + 2 + 58 + 0x0001 + 0x0008, '32-bit length split in two words');
});
