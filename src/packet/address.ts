/**
 * IP address text ⇄ numbers, for configuration, tests, the lab and logs. Not on the per-packet path (the decoder
 * writes addresses straight into `InnerPacket.src/dst`).
 *
 * Representation shared with the decoder (src/packet/types.ts): four 32-bit words, word 0 most significant.
 * IPv4 addresses are IPv4-mapped (RFC 4291 §2.5.5.2: ::ffff:a.b.c.d → [0, 0, 0xffff, a.b.c.d]), so
 * `parseIp('10.0.0.1')` and `parseIp('::ffff:10.0.0.1')` are the same address and both format as "10.0.0.1".
 *
 * Text accepted: dotted-quad IPv4 with four decimal parts 0–255 and no leading zeros (a leading zero means octal
 * to inet_aton and decimal to others: refuse the ambiguity); IPv6 per RFC 4291 §2.2 (hex groups, one "::",
 * optional trailing dotted quad). Zone ids ("%eth0") and prefixes ("/24") are not addresses and are refused.
 * Output: RFC 5952 canonical text (lowercase, longest run of two or more zero groups compressed, first on ties).
 */

/** RFC 4291 §2.5.5.2: the third word of an IPv4-mapped IPv6 address. */
export const IPV4_MAPPED_WORD2 = 0xffff;

/** IPv4 dotted quad → unsigned 32-bit number, or undefined when `s` is not one. */
export function tryIpv4ToU32(s: string): number | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e /* . */) {
      if (digits === 0 || dots === 3) return undefined;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && part === 0) return undefined; // leading zero
      part = part * 10 + (c - 0x30);
      digits++;
      if (part > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + part;
}

/** IPv4 dotted quad → unsigned 32-bit number. Throws RangeError on anything else. */
export function ipv4ToU32(s: string): number {
  const v = tryIpv4ToU32(s);
  if (v === undefined) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
  return v;
}

/** Unsigned 32-bit number → dotted quad. */
export function u32ToIpv4(n: number): string {
  return `${(n >>> 24) & 0xff}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Parse RFC 4291 §2.2 text into eight 16-bit groups; undefined when malformed. */
function parseIpv6Groups(s: string): number[] | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const head: number[] = [];
  const tail: number[] = [];
  let compressed = false;
  let target = head;
  let i = 0;
  if (s.startsWith('::')) {
    compressed = true;
    target = tail;
    i = 2;
    if (i === s.length) return [0, 0, 0, 0, 0, 0, 0, 0];
  } else if (s.charCodeAt(0) === 0x3a) {
    return undefined; // a single leading ':'
  }
  while (i < s.length) {
    // One group: up to 4 hex digits, or a dotted quad as the last 32 bits (RFC 4291 §2.2 form 3).
    let j = i;
    let group = 0;
    while (j < s.length && j - i < 5) {
      const d = hexDigit(s.charCodeAt(j));
      if (d < 0) break;
      group = group * 16 + d;
      j++;
    }
    const digits = j - i;
    if (j < s.length && s.charCodeAt(j) === 0x2e) {
      const v4 = tryIpv4ToU32(s.slice(i));
      if (v4 === undefined) return undefined;
      target.push(v4 >>> 16, v4 & 0xffff);
      i = s.length;
      break;
    }
    if (digits === 0 || digits > 4) return undefined;
    target.push(group);
    i = j;
    if (i === s.length) break;
    if (s.charCodeAt(i) !== 0x3a) return undefined;
    i++;
    if (i < s.length && s.charCodeAt(i) === 0x3a) {
      if (compressed) return undefined; // a second "::"
      compressed = true;
      target = tail;
      i++;
      if (i === s.length) break;
    } else if (i === s.length) {
      return undefined; // a single trailing ':'
    }
  }
  const n = head.length + tail.length;
  if (compressed) {
    // "::" stands for one or more zero groups (RFC 4291 §2.2 form 2).
    if (n > 7) return undefined;
    const out = head.slice();
    for (let k = n; k < 8; k++) out.push(0);
    for (const g of tail) out.push(g);
    return out;
  }
  return n === 8 ? head : undefined;
}

/** Address text (IPv4 or IPv6) → four words, IPv4 mapped; undefined when `s` is not an address. */
export function tryParseIp(s: string): Uint32Array | undefined {
  const v4 = tryIpv4ToU32(s);
  if (v4 !== undefined) return Uint32Array.of(0, 0, IPV4_MAPPED_WORD2, v4);
  const g = parseIpv6Groups(s);
  if (g === undefined) return undefined;
  const out = new Uint32Array(4);
  for (let w = 0; w < 4; w++) out[w] = ((g[2 * w]! << 16) | g[2 * w + 1]!) >>> 0;
  return out;
}

/** Address text (IPv4 or IPv6) → four words, IPv4 mapped. Throws RangeError on anything else. */
export function parseIp(s: string): Uint32Array {
  const w = tryParseIp(s);
  if (w === undefined) throw new RangeError(`not an IP address: ${JSON.stringify(s)}`);
  return w;
}

/** True for ::ffff:a.b.c.d, the form IPv4 addresses take in this project. */
export function isIpv4Mapped(words: ArrayLike<number>): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === IPV4_MAPPED_WORD2;
}

/** Four words → text: dotted quad for IPv4-mapped addresses, RFC 5952 canonical IPv6 otherwise. */
export function formatIp(words: ArrayLike<number>): string {
  if (isIpv4Mapped(words)) return u32ToIpv4(words[3]!);
  const g: number[] = [];
  for (let w = 0; w < 4; w++) {
    const v = words[w]! >>> 0;
    g.push(v >>> 16, v & 0xffff);
  }
  // RFC 5952 §4.2: compress the longest run of ≥ 2 zero groups; the first one when runs tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (x: number): string => x.toString(16);
  if (bestStart < 0) return g.map(hex).join(':');
  return `${g.slice(0, bestStart).map(hex).join(':')}::${g.slice(bestStart + bestLen).map(hex).join(':')}`;
}
