/**
 * The one TCP option reassembly needs: Window Scale (RFC 7323 §2.2), read from a SYN's options.
 *
 *   Options (RFC 9293 §3.1): Kind 0 = End of Option List (1 byte), Kind 1 = No-Operation (1 byte), every other
 *   kind is Kind, Length (including both), data.
 *
 *   Window Scale option:  +---------+---------+---------+
 *                         | Kind=3  |Length=3 |shift.cnt|
 *                         +---------+---------+---------+
 */

const KIND_EOL = 0;
const KIND_NOP = 1;
const KIND_WSCALE = 3;
const WSCALE_LENGTH = 3;

/** Window Scale shift.cnt in the options buf[off, off + len), or −1 when absent or the options are malformed. */
export function readWindowScale(buf: Uint8Array, off: number, len: number): number {
  const end = off + len;
  let i = off;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === KIND_EOL) return -1;
    if (kind === KIND_NOP) {
      i++;
      continue;
    }
    // RFC 9293 §3.1: every option but EOL and NOP has a length octet counting kind and length.
    if (i + 1 >= end) return -1;
    const optLen = buf[i + 1]!;
    if (optLen < 2 || i + optLen > end) return -1;
    if (kind === KIND_WSCALE) return optLen === WSCALE_LENGTH ? buf[i + 2]! : -1;
    i += optLen;
  }
  return -1;
}
