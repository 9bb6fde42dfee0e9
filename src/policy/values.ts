/**
 * Parsers for the scalar values a policy is made of: addresses and CIDRs, ports and ranges, protocols, ICMP
 * types, TCP flag names, domain patterns, set references. Shared by the schema (which turns a parse failure into
 * an error message at the value's line:column) and the compiler (which turns the parsed form into matchers).
 *
 * Each parser returns either the parsed value or `{ error: message }`; the messages are written for the person
 * editing the policy, and say what a valid value looks like.
 */
import { TCP_FLAG } from '../packet/types.js';
import { formatIp, tryParseIp } from '../packet/address.js';
import { normalizeDomain } from '../match/domain-set.js';
import { V6_MAPPED_HI, V6_MAPPED_LO } from '../match/ranges.js';

export type Parsed<T> = T | { error: string };

export function isError<T>(v: Parsed<T>): v is { error: string } {
  return typeof v === 'object' && v !== null && 'error' in v;
}

/** `$name`: a reference to a named set. */
export const SET_NAME_PATTERN = '[A-Za-z0-9][A-Za-z0-9_.-]{0,63}';
const SET_REF = new RegExp(`^\\$(${SET_NAME_PATTERN})$`);
export const SET_NAME = new RegExp(`^${SET_NAME_PATTERN}$`);

/** Name of a rule or scope: what logs and `explain` show. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$';

export function setRef(s: string): string | undefined {
  const m = SET_REF.exec(s);
  return m === null ? undefined : m[1];
}

// ---- addresses ----------------------------------------------------------------------------------------------

/** IPv4 CIDR: network address and prefix length. */
export interface Cidr4 {
  v4: true;
  addr: number;
  prefix: number;
}
/** IPv6 CIDR (never inside ::ffff:0:0/96: mapped prefixes are turned into Cidr4). */
export interface Cidr6 {
  v4: false;
  addr: bigint;
  prefix: number;
}
export type Cidr = Cidr4 | Cidr6;

export type AddressItem = { kind: 'any' } | { kind: 'set'; name: string } | { kind: 'cidr'; cidr: Cidr };

const MAPPED_PREFIX = 96;

export function wordsToBigInt(w: ArrayLike<number>): bigint {
  return (
    (BigInt(w[0]! >>> 0) << 96n) |
    (BigInt(w[1]! >>> 0) << 64n) |
    (BigInt(w[2]! >>> 0) << 32n) |
    BigInt(w[3]! >>> 0)
  );
}

export function bigIntToWords(v: bigint, out: Uint32Array): Uint32Array {
  out[0] = Number((v >> 96n) & 0xffffffffn);
  out[1] = Number((v >> 64n) & 0xffffffffn);
  out[2] = Number((v >> 32n) & 0xffffffffn);
  out[3] = Number(v & 0xffffffffn);
  return out;
}

export function formatCidr(c: Cidr): string {
  if (c.v4) {
    const a = c.addr >>> 0;
    return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}/${c.prefix}`;
  }
  return `${formatIp(bigIntToWords(c.addr, new Uint32Array(4)))}/${c.prefix}`;
}

/**
 * An address or CIDR: `10.0.0.0/8`, `10.1.2.3` (= /32), `2001:db8::/32`, `::1`. Host bits below the prefix are
 * refused (10.1.2.3/8 is almost always a typo for 10.0.0.0/8 or 10.1.2.3/32; say which).
 */
export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const words = tryParseIp(addrText);
  if (words === undefined) {
    return { error: `"${text}" is not an IP address or CIDR; write e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32` };
  }
  const isV4Text = !addrText.includes(':');
  let prefix: number;
  const max = isV4Text ? 32 : 128;
  if (slash < 0) {
    prefix = max;
  } else {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return { error: `"${text}": the prefix length after "/" must be 0-${max} for ${isV4Text ? 'IPv4' : 'IPv6'}` };
    }
    prefix = Number(p);
  }
  if (isV4Text) {
    const addr = words[3]! >>> 0;
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    if ((addr & mask) >>> 0 !== addr) {
      const net = formatCidr({ v4: true, addr: (addr & mask) >>> 0, prefix });
      return { error: `"${text}" has host bits set below /${prefix}; write ${net} for the network or ${addrText}/32 for the host` };
    }
    return { v4: true, addr, prefix };
  }
  const value = wordsToBigInt(words);
  const hostBits = 128 - prefix;
  const hostMask = hostBits === 0 ? 0n : (1n << BigInt(hostBits)) - 1n;
  if ((value & hostMask) !== 0n) {
    const net = formatCidr({ v4: false, addr: value & ~hostMask, prefix });
    return { error: `"${text}" has host bits set below /${prefix}; write ${net} for the network or ${addrText}/128 for the host` };
  }
  // ::ffff:a.b.c.d/96+n is the IPv4 prefix a.b.c.d/n (packet/types.ts stores IPv4 that way).
  if (prefix >= MAPPED_PREFIX && value >> 32n === 0xffffn) {
    return { v4: true, addr: Number(value & 0xffffffffn) >>> 0, prefix: prefix - MAPPED_PREFIX };
  }
  return { v4: false, addr: value, prefix };
}

export function parseAddressItem(text: string): Parsed<AddressItem> {
  if (text === 'any') return { kind: 'any' };
  const ref = setRef(text);
  if (ref !== undefined) return { kind: 'set', name: ref };
  if (text.startsWith('$')) return { error: `"${text}" is not a valid set reference; set names use letters, digits, "_", "-" and "."` };
  if (text.startsWith('!')) {
    return { error: `"${text}": exclusions are written under except:, e.g. { match: [10.0.0.0/8], except: [${text.slice(1)}] }` };
  }
  const c = parseCidr(text);
  if (isError(c)) return c;
  return { kind: 'cidr', cidr: c };
}

/** [lo, hi] inclusive ranges a CIDR covers, per family. */
export function cidrRange4(c: Cidr4): [number, number] {
  const size = 2 ** (32 - c.prefix);
  return [c.addr, c.addr + size - 1];
}
export function cidrRange6(c: Cidr6): [bigint, bigint] {
  const size = 1n << BigInt(128 - c.prefix);
  return [c.addr, c.addr + size - 1n];
}

export { V6_MAPPED_HI, V6_MAPPED_LO };

// ---- ports and small numeric ranges --------------------------------------------------------------------------

export type RangeItem = { kind: 'any' } | { kind: 'set'; name: string } | { kind: 'range'; lo: number; hi: number };

/** A number or "lo-hi" range within [0, max]: ports (65535), ICMP types and codes (255). */
export function parseRangeItem(v: string | number, what: string, max: number): Parsed<RangeItem> {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > max) return { error: `${v} is not a valid ${what}; use a whole number 0-${max}` };
    return { kind: 'range', lo: v, hi: v };
  }
  if (v === 'any') return { kind: 'any' };
  const ref = setRef(v);
  if (ref !== undefined) return { kind: 'set', name: ref };
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(v);
  if (m === null) {
    const colon = /^\d+:\d+$/.test(v) ? ` (ranges use "-": "${v.replace(':', '-')}")` : '';
    return { error: `"${v}" is not a ${what}, a range like "1024-65535", or a $set${colon}` };
  }
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > max || hi > max) return { error: `"${v}": a ${what} is at most ${max}` };
  if (lo > hi) return { error: `"${v}": the range is backwards; write "${hi}-${lo}"` };
  return { kind: 'range', lo, hi };
}

// ---- protocols ---------------------------------------------------------------------------------------------

/** IANA protocol numbers for the names a policy may use. */
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = Object.freeze({
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  sctp: 132,
});
export const PROTOCOL_NAMES = Object.keys(PROTOCOL_NUMBERS);

export function protocolName(n: number): string {
  for (const [k, v] of Object.entries(PROTOCOL_NUMBERS)) if (v === n) return k;
  return String(n);
}

export function parseProtocol(v: string | number): Parsed<number | 'any'> {
  if (v === 'any') return 'any';
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > 255) return { error: `${v} is not an IP protocol number (0-255)` };
    return v;
  }
  const n = PROTOCOL_NUMBERS[v.toLowerCase()];
  if (n !== undefined) return n;
  return { error: `"${v}" is not a protocol; use ${PROTOCOL_NAMES.join(', ')}, any, or a number 0-255` };
}

// ---- TCP flags ---------------------------------------------------------------------------------------------

/** RFC 9293 §3.1 control bits (plus ECE/CWR from RFC 3168). */
export const TCP_FLAG_BITS: Readonly<Record<string, number>> = TCP_FLAG;
export const TCP_FLAG_NAMES = Object.keys(TCP_FLAG_BITS);

// ---- domains -----------------------------------------------------------------------------------------------

export type DomainItem = { kind: 'set'; name: string } | { kind: 'exact'; name: string } | { kind: 'subdomains'; name: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

export { normalizeDomain };

/**
 * `example.com` (that name only) or `*.example.com` (every name below example.com, at any depth, but not
 * example.com itself). Case-insensitive; a trailing dot is ignored; internationalized names in xn-- form.
 */
export function parseDomainItem(text: string): Parsed<DomainItem> {
  const ref = setRef(text);
  if (ref !== undefined) return { kind: 'set', name: ref };
  let s = text;
  let kind: 'exact' | 'subdomains' = 'exact';
  if (s.startsWith('*.')) {
    kind = 'subdomains';
    s = s.slice(2);
  } else if (s.includes('*')) {
    return { error: `"${text}": a wildcard is only allowed as the whole first label, as in "*.example.com"` };
  }
  if (/[^\x21-\x7e]/.test(s)) {
    return { error: `"${text}" contains spaces or non-ASCII characters; write internationalized names in their xn-- (punycode) form` };
  }
  const name = normalizeDomain(s);
  if (name.length === 0 || name.length > 253) return { error: `"${text}" is not a domain name (1-253 characters)` };
  for (const label of name.split('.')) {
    if (!LABEL.test(label)) {
      return {
        error: `"${text}" is not a domain name: label "${label}" must be 1-63 letters, digits, "-" or "_", not starting or ending with "-"`,
      };
    }
  }
  return { kind, name };
}

// ---- endpoint ids ------------------------------------------------------------------------------------------

export const ENDPOINT_ID_PATTERN = '^[vV][pP][cC][eE]-[0-9a-fA-F]{17}$';
