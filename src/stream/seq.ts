/**
 * TCP sequence-number arithmetic (RFC 9293 §3.4).
 *
 *   "It is essential to remember that the actual sequence number space is finite, though very large. This space
 *    ranges from 0 to 2**32 - 1. Since the space is finite, all arithmetic dealing with sequence numbers must be
 *    performed modulo 2**32."
 *
 * Two sequence numbers are compared by their signed 32-bit difference, which is exact while they are less than
 * 2^31 apart (RFC 1982 serial-number arithmetic). The reassembler keeps one anchor (a sequence number and the
 * 53-bit stream offset it stands for) and converts every segment's sequence number into a stream offset through
 * that difference, so streams longer than 4 GiB and wraps of the 32-bit space need no special case.
 */

/** Size of the sequence space, RFC 9293 §3.4. */
export const SEQ_SPACE = 0x1_0000_0000;

/** a − b as a signed 32-bit number: > 0 when a is after b (valid while |a − b| < 2^31). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a + n modulo 2^32, as an unsigned 32-bit number. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}
