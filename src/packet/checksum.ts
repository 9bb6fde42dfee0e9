/**
 * Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
 * `sum16` returns the unfolded partial sum so pseudo-headers and payloads can be summed separately;
 * `fold` turns a partial sum into the final 16-bit checksum value (already complemented).
 */
export function sum16(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + len - 1;
  let i = off;
  for (; i < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  // RFC 1071 §4.1: an odd trailing byte is padded with a zero byte on the right.
  if (i === end) sum += buf[i]! << 8;
  // Fold periodically is unnecessary: 2^53 / 0xffff words ≈ 1.4e11, far beyond any packet.
  return sum;
}

export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Partial sum of the IPv4 pseudo-header (RFC 768 / RFC 793): src, dst, zero+protocol, L4 length. */
export function pseudoSumV4(src: number, dst: number, protocol: number, l4Length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + l4Length;
}

/** Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1); addresses as four 32-bit words each. */
export function pseudoSumV6(src: Uint32Array, dst: Uint32Array, nextHeader: number, l4Length: number): number {
  let sum = nextHeader + (l4Length >>> 16) + (l4Length & 0xffff);
  for (let i = 0; i < 4; i++) {
    const s = src[i]!;
    const d = dst[i]!;
    sum += (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff);
  }
  return sum;
}
