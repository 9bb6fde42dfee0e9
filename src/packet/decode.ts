/**
 * Inner packet decoder: the bare IPv4/IPv6 packet GWLB carries in GENEVE, down to TCP/UDP/ICMP/ICMPv6 headers.
 * Decodes in place into a reused InnerPacket (src/packet/types.ts); allocation-free, never throws when the caller
 * keeps off + len ≤ buf.length.
 *
 * IPv4, RFC 791 §3.1:
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |Version|  IHL  |Type of Service|          Total Length         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |         Identification        |Flags|      Fragment Offset    |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  Time to Live |    Protocol   |         Header Checksum       |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                       Source Address                          |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                    Destination Address                        |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                    Options                    |    Padding    |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * IPv6, RFC 8200 §3 (then extension headers, §4):
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |Version| Traffic Class |           Flow Label                  |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |         Payload Length        |  Next Header  |   Hop Limit   |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                   Source Address (128 bits)                   |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                Destination Address (128 bits)                 |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *    Generic extension header (Hop-by-Hop §4.3, Routing §4.4, Destination Options §4.6; RFC 6564 layout):
 *    |  Next Header  |  Hdr Ext Len  |  ... (Hdr Ext Len + 1) * 8 bytes in all
 *    Fragment header §4.5 (8 bytes):
 *    |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
 *    |                         Identification                        |
 *    Authentication Header, RFC 4302 §2: |  Next Header  |  Payload Len  | ... (Payload Len + 2) * 4 bytes
 *
 * TCP, RFC 9293 §3.1:
 *    |          Source Port          |       Destination Port        |
 *    |                        Sequence Number                        |
 *    |                    Acknowledgment Number                      |
 *    |  Data |       |C|E|U|A|P|R|S|F|                               |
 *    | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *    |           Checksum            |         Urgent Pointer        |
 *    |                           [Options]                           |
 * UDP, RFC 768:
 *    |          Source Port          |       Destination Port        |
 *    |            Length             |           Checksum            |
 * ICMP echo, RFC 792 (types 8/0) and ICMPv6 echo, RFC 4443 §4.1–4.2 (types 128/129):
 *    |     Type      |     Code      |          Checksum             |
 *    |           Identifier          |        Sequence Number        |
 *
 * Not enforced, on purpose (receivers must not be stricter than needed, and GWLB delivered the packet):
 * - the IPv4 header checksum (a router would have dropped a bad one already; ipv4HeaderChecksumOk is available
 *   for a policy that wants it), and TCP/UDP/ICMP checksums (the end host checks those; we forward, not consume);
 * - bytes after the IP packet's own length (link padding): ignored;
 * - IPv6 extension header order (RFC 8200 §4.1 "should" order): any order is walked.
 */
import type { Buffer } from 'node:buffer';
import { fold, sum16 } from './checksum.js';
import type { InnerPacket } from './types.js';

/** Why decodeInner refused a packet (0 = usable). Stable numbers: they index PACKET_ANOMALY_NAMES and stats. */
export const PACKET_ANOMALY = {
  OK: 0,
  /** Fewer bytes than the fixed IP header (20 for IPv4, 40 for IPv6; or none at all). */
  TRUNCATED_IP_HEADER: 1,
  /** Version nibble is not 4/6, or disagrees with the GENEVE Protocol Type. */
  BAD_IP_VERSION: 2,
  /** IPv4 IHL < 5. */
  BAD_IPV4_IHL: 3,
  /** IPv4 Total Length < IHL * 4 or > bytes available; IPv6 40 + Payload Length > bytes available. */
  BAD_IP_LENGTH: 4,
  /** An IPv6 extension header runs past the packet. */
  TRUNCATED_EXTENSION_HEADER: 5,
  /** More than MAX_IPV6_EXTENSION_HEADERS extension headers. */
  TOO_MANY_EXTENSION_HEADERS: 6,
  /** Fewer than 20 bytes of TCP header, or fewer than Data Offset * 4. */
  TRUNCATED_TCP: 7,
  /** TCP Data Offset < 5. */
  BAD_TCP_DATA_OFFSET: 8,
  /** Fewer than 8 bytes of UDP header. */
  TRUNCATED_UDP: 9,
  /** UDP Length < 8, or > bytes available in an unfragmented packet. */
  BAD_UDP_LENGTH: 10,
  /** Fewer than 4 bytes of ICMP/ICMPv6 (type, code, checksum), or fewer than 8 for an echo. */
  TRUNCATED_ICMP: 11,
} as const;
export type PacketAnomaly = (typeof PACKET_ANOMALY)[keyof typeof PACKET_ANOMALY];

/** Names by code: PACKET_ANOMALY_NAMES[PACKET_ANOMALY.TRUNCATED_TCP] === 'TRUNCATED_TCP'. */
export const PACKET_ANOMALY_NAMES: readonly string[] = Object.freeze(
  (Object.keys(PACKET_ANOMALY) as (keyof typeof PACKET_ANOMALY)[]).reduce<string[]>((names, k) => {
    names[PACKET_ANOMALY[k]] = k;
    return names;
  }, []),
);

/** GENEVE Protocol Type values (EtherType numbering); 0 = take the version nibble as it is. */
export const INNER_PROTOCOL_IPV4 = 0x0800;
export const INNER_PROTOCOL_IPV6 = 0x86dd;
export const INNER_PROTOCOL_ANY = 0;

/** Upper bound on IPv6 extension headers walked per packet (RFC 8200 does not bound it; we must). */
export const MAX_IPV6_EXTENSION_HEADERS = 16;

// RFC 791 §3.1
const IPV4_MIN_HEADER_LENGTH = 20;
const IPV4_IHL_MASK = 0x0f;
const IPV4_FLAG_MF = 0x2000;
const IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;
const FRAGMENT_OFFSET_UNIT_BYTES = 8; // RFC 791 §3.1 and RFC 8200 §4.5: Fragment Offset counts 8-octet units
// RFC 8200 §3, §4
const IPV6_HEADER_LENGTH = 40;
const IPV6_EXT_UNIT_BYTES = 8; // Hdr Ext Len unit, not counting the first 8 octets
const IPV6_FRAGMENT_HEADER_LENGTH = 8; // §4.5
const IPV6_FRAGMENT_OFFSET_SHIFT = 3; // §4.5: 13-bit offset above Res(2) and M(1)
const IPV6_FRAGMENT_FLAG_M = 0x1;
const AH_UNIT_BYTES = 4; // RFC 4302 §2.2: Payload Len in 32-bit words, minus 2
const AH_LENGTH_BIAS = 2;
const IP_VERSION_SHIFT = 4;
// IANA protocol numbers / IPv6 Next Header values
const NH_HOP_BY_HOP = 0;
const NH_ROUTING = 43;
const NH_FRAGMENT = 44;
const NH_AH = 51;
const NH_NO_NEXT_HEADER = 59;
const NH_DEST_OPTIONS = 60;
const NH_MOBILITY = 135; // RFC 6275 §6.1, generic layout
const NH_HIP = 139; // RFC 7401 §5.1, generic layout
const NH_SHIM6 = 140; // RFC 5533 §5, generic layout
const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMPV6 = 58;
// RFC 9293 §3.1
const TCP_MIN_HEADER_LENGTH = 20;
const TCP_DATA_OFFSET_SHIFT = 4;
const TCP_WORD_BYTES = 4;
// RFC 768
const UDP_HEADER_LENGTH = 8;
// RFC 792 / RFC 4443 §2.1: Type, Code, Checksum; echo adds Identifier, Sequence Number.
const ICMP_MIN_LENGTH = 4;
const ICMP_HEADER_LENGTH = 8;
const ICMP_ECHO_REPLY = 0;
const ICMP_ECHO_REQUEST = 8;
const ICMPV6_ECHO_REQUEST = 128;
const ICMPV6_ECHO_REPLY = 129;

function failed(out: InnerPacket, anomaly: number): number {
  out.anomaly = anomaly;
  return anomaly;
}

/**
 * Decode the IP packet at buf[off, off + len) into `out`. `protocolType` is the GENEVE Protocol Type
 * (0x0800 / 0x86DD) the version nibble must agree with, or INNER_PROTOCOL_ANY. Returns (and stores in
 * out.anomaly) a PACKET_ANOMALY code.
 *
 * Every field of `out` is reset first. On an anomaly, fields decoded before the failing check keep their values
 * (so a malformed TCP header still has its addresses for logging) and the others stay at their reset values.
 */
// 32-bit fields are read as written-out byte expressions, not buf.readUInt32BE(): a call V8 does not inline returns a
// value ≥ 2^31 as a new heap number, one allocation per field per packet (sequence numbers, IPv6 address words).
// test/geneve/alloc.test.ts measures that decoding allocates nothing.
export function decodeInner(buf: Buffer, off: number, len: number, protocolType: number, out: InnerPacket): number {
  out.anomaly = PACKET_ANOMALY.OK;
  out.ipVersion = 0;
  out.protocol = 0;
  out.l3Offset = off;
  out.l4Offset = -1;
  out.payloadOffset = 0;
  out.payloadLength = 0;
  out.ipLength = 0;
  const src = out.src;
  const dst = out.dst;
  src[0] = 0;
  src[1] = 0;
  src[2] = 0;
  src[3] = 0;
  dst[0] = 0;
  dst[1] = 0;
  dst[2] = 0;
  dst[3] = 0;
  out.srcPort = 0;
  out.dstPort = 0;
  out.tcpFlags = 0;
  out.tcpSeq = 0;
  out.tcpAck = 0;
  out.tcpWindow = 0;
  out.icmpType = -1;
  out.icmpCode = -1;
  out.isFragment = false;
  out.isLaterFragment = false;
  out.fragmentId = 0;
  out.fragmentOffset = 0;
  out.moreFragments = false;
  out.fragmentDataOffset = 0;
  out.ttl = 0;

  if (len < 1) return failed(out, PACKET_ANOMALY.TRUNCATED_IP_HEADER);
  const version = buf.readUInt8(off) >>> IP_VERSION_SHIFT;
  if (protocolType === INNER_PROTOCOL_IPV4 || (protocolType === INNER_PROTOCOL_ANY && version === 4)) {
    if (version !== 4) return failed(out, PACKET_ANOMALY.BAD_IP_VERSION);
    return decodeIpv4(buf, off, len, out);
  }
  if (protocolType === INNER_PROTOCOL_IPV6 || (protocolType === INNER_PROTOCOL_ANY && version === 6)) {
    if (version !== 6) return failed(out, PACKET_ANOMALY.BAD_IP_VERSION);
    return decodeIpv6(buf, off, len, out);
  }
  return failed(out, PACKET_ANOMALY.BAD_IP_VERSION);
}

function decodeIpv4(buf: Buffer, off: number, len: number, out: InnerPacket): number {
  if (len < IPV4_MIN_HEADER_LENGTH) return failed(out, PACKET_ANOMALY.TRUNCATED_IP_HEADER);
  const ihl = (buf.readUInt8(off) & IPV4_IHL_MASK) * 4;
  const totalLength = buf.readUInt16BE(off + 2);
  const flagsFragment = buf.readUInt16BE(off + 6);
  out.ipVersion = 4;
  out.ttl = buf.readUInt8(off + 8);
  out.protocol = buf.readUInt8(off + 9);
  out.src[2] = 0xffff; // IPv4-mapped, RFC 4291 §2.5.5.2
  out.src[3] = ((((buf[off + 12] as number) << 24) | ((buf[off + 13] as number) << 16) | ((buf[off + 14] as number) << 8) | (buf[off + 15] as number)) >>> 0);
  out.dst[2] = 0xffff;
  out.dst[3] = ((((buf[off + 16] as number) << 24) | ((buf[off + 17] as number) << 16) | ((buf[off + 18] as number) << 8) | (buf[off + 19] as number)) >>> 0);

  // RFC 791 §3.1: "the minimum value for a correct header is 5".
  if (ihl < IPV4_MIN_HEADER_LENGTH) return failed(out, PACKET_ANOMALY.BAD_IPV4_IHL);
  // Total Length covers header and data; it can be shorter than what arrived (padding) but never longer.
  if (totalLength > len || totalLength < ihl) return failed(out, PACKET_ANOMALY.BAD_IP_LENGTH);
  out.ipLength = totalLength;

  const fragmentOffset = flagsFragment & IPV4_FRAGMENT_OFFSET_MASK;
  const moreFragments = (flagsFragment & IPV4_FLAG_MF) !== 0;
  out.isFragment = moreFragments || fragmentOffset !== 0;
  if (out.isFragment) {
    out.fragmentId = buf.readUInt16BE(off + 4);
    out.fragmentOffset = fragmentOffset * FRAGMENT_OFFSET_UNIT_BYTES;
    out.moreFragments = moreFragments;
    out.fragmentDataOffset = off + ihl;
  }
  if (fragmentOffset !== 0) {
    // RFC 791: only the fragment at offset 0 carries the transport header.
    out.isLaterFragment = true;
    return PACKET_ANOMALY.OK;
  }
  return decodeTransport(buf, off + ihl, off + totalLength, out.protocol, moreFragments, out);
}

function decodeIpv6(buf: Buffer, off: number, len: number, out: InnerPacket): number {
  if (len < IPV6_HEADER_LENGTH) return failed(out, PACKET_ANOMALY.TRUNCATED_IP_HEADER);
  const payloadLength = buf.readUInt16BE(off + 4);
  let nextHeader = buf.readUInt8(off + 6);
  out.ipVersion = 6;
  out.ttl = buf.readUInt8(off + 7);
  const src = out.src;
  const dst = out.dst;
  src[0] = ((((buf[off + 8] as number) << 24) | ((buf[off + 9] as number) << 16) | ((buf[off + 10] as number) << 8) | (buf[off + 11] as number)) >>> 0);
  src[1] = ((((buf[off + 12] as number) << 24) | ((buf[off + 13] as number) << 16) | ((buf[off + 14] as number) << 8) | (buf[off + 15] as number)) >>> 0);
  src[2] = ((((buf[off + 16] as number) << 24) | ((buf[off + 17] as number) << 16) | ((buf[off + 18] as number) << 8) | (buf[off + 19] as number)) >>> 0);
  src[3] = ((((buf[off + 20] as number) << 24) | ((buf[off + 21] as number) << 16) | ((buf[off + 22] as number) << 8) | (buf[off + 23] as number)) >>> 0);
  dst[0] = ((((buf[off + 24] as number) << 24) | ((buf[off + 25] as number) << 16) | ((buf[off + 26] as number) << 8) | (buf[off + 27] as number)) >>> 0);
  dst[1] = ((((buf[off + 28] as number) << 24) | ((buf[off + 29] as number) << 16) | ((buf[off + 30] as number) << 8) | (buf[off + 31] as number)) >>> 0);
  dst[2] = ((((buf[off + 32] as number) << 24) | ((buf[off + 33] as number) << 16) | ((buf[off + 34] as number) << 8) | (buf[off + 35] as number)) >>> 0);
  dst[3] = ((((buf[off + 36] as number) << 24) | ((buf[off + 37] as number) << 16) | ((buf[off + 38] as number) << 8) | (buf[off + 39] as number)) >>> 0);

  const ipLength = IPV6_HEADER_LENGTH + payloadLength;
  if (ipLength > len) return failed(out, PACKET_ANOMALY.BAD_IP_LENGTH);
  out.ipLength = ipLength;
  const end = off + ipLength;

  let p = off + IPV6_HEADER_LENGTH;
  let moreFragments = false;
  let count = 0;
  for (;;) {
    out.protocol = nextHeader;
    if (
      nextHeader === NH_HOP_BY_HOP ||
      nextHeader === NH_ROUTING ||
      nextHeader === NH_DEST_OPTIONS ||
      nextHeader === NH_MOBILITY ||
      nextHeader === NH_HIP ||
      nextHeader === NH_SHIM6
    ) {
      if (++count > MAX_IPV6_EXTENSION_HEADERS) return failed(out, PACKET_ANOMALY.TOO_MANY_EXTENSION_HEADERS);
      if (p + 2 > end) return failed(out, PACKET_ANOMALY.TRUNCATED_EXTENSION_HEADER);
      const headerLength = (buf.readUInt8(p + 1) + 1) * IPV6_EXT_UNIT_BYTES;
      if (p + headerLength > end) return failed(out, PACKET_ANOMALY.TRUNCATED_EXTENSION_HEADER);
      nextHeader = buf.readUInt8(p);
      p += headerLength;
    } else if (nextHeader === NH_AH) {
      if (++count > MAX_IPV6_EXTENSION_HEADERS) return failed(out, PACKET_ANOMALY.TOO_MANY_EXTENSION_HEADERS);
      if (p + 2 > end) return failed(out, PACKET_ANOMALY.TRUNCATED_EXTENSION_HEADER);
      const headerLength = (buf.readUInt8(p + 1) + AH_LENGTH_BIAS) * AH_UNIT_BYTES;
      if (p + headerLength > end) return failed(out, PACKET_ANOMALY.TRUNCATED_EXTENSION_HEADER);
      nextHeader = buf.readUInt8(p);
      p += headerLength;
    } else if (nextHeader === NH_FRAGMENT) {
      if (++count > MAX_IPV6_EXTENSION_HEADERS) return failed(out, PACKET_ANOMALY.TOO_MANY_EXTENSION_HEADERS);
      if (p + IPV6_FRAGMENT_HEADER_LENGTH > end) return failed(out, PACKET_ANOMALY.TRUNCATED_EXTENSION_HEADER);
      nextHeader = buf.readUInt8(p);
      const offsetFlags = buf.readUInt16BE(p + 2);
      const identification = ((((buf[p + 4] as number) << 24) | ((buf[p + 5] as number) << 16) | ((buf[p + 6] as number) << 8) | (buf[p + 7] as number)) >>> 0);
      p += IPV6_FRAGMENT_HEADER_LENGTH;
      const fragmentOffset = (offsetFlags >>> IPV6_FRAGMENT_OFFSET_SHIFT) * FRAGMENT_OFFSET_UNIT_BYTES;
      moreFragments = (offsetFlags & IPV6_FRAGMENT_FLAG_M) !== 0;
      // RFC 6946 §4: an atomic fragment (offset 0, M = 0) is processed in isolation, as a whole packet.
      if (fragmentOffset === 0 && !moreFragments) continue;
      out.isFragment = true;
      out.fragmentId = identification;
      out.fragmentOffset = fragmentOffset;
      out.moreFragments = moreFragments;
      out.fragmentDataOffset = p;
      if (fragmentOffset !== 0) {
        // Non-first fragment: what follows is the middle of the fragmentable part, not a header.
        out.protocol = nextHeader;
        out.isLaterFragment = true;
        return PACKET_ANOMALY.OK;
      }
    } else if (nextHeader === NH_NO_NEXT_HEADER) {
      // RFC 8200 §4.7: nothing follows.
      return PACKET_ANOMALY.OK;
    } else {
      // Upper-layer header (or ESP 50, whose contents are opaque): stop here.
      return decodeTransport(buf, p, end, nextHeader, moreFragments, out);
    }
  }
}

/**
 * Transport header at [p, end). `moreFragments`: this is the first fragment of a fragmented datagram, so length
 * fields that cover the whole datagram (UDP Length) may exceed what is here.
 */
function decodeTransport(buf: Buffer, p: number, end: number, protocol: number, moreFragments: boolean, out: InnerPacket): number {
  out.protocol = protocol;
  out.l4Offset = p;
  const available = end - p;

  if (protocol === PROTO_TCP) {
    if (available < TCP_MIN_HEADER_LENGTH) return failed(out, PACKET_ANOMALY.TRUNCATED_TCP);
    out.srcPort = buf.readUInt16BE(p);
    out.dstPort = buf.readUInt16BE(p + 2);
    out.tcpSeq = ((((buf[p + 4] as number) << 24) | ((buf[p + 5] as number) << 16) | ((buf[p + 6] as number) << 8) | (buf[p + 7] as number)) >>> 0);
    out.tcpAck = ((((buf[p + 8] as number) << 24) | ((buf[p + 9] as number) << 16) | ((buf[p + 10] as number) << 8) | (buf[p + 11] as number)) >>> 0);
    const dataOffset = (buf.readUInt8(p + 12) >>> TCP_DATA_OFFSET_SHIFT) * TCP_WORD_BYTES;
    out.tcpFlags = buf.readUInt8(p + 13);
    out.tcpWindow = buf.readUInt16BE(p + 14);
    // RFC 9293 §3.1: Data Offset counts 32-bit words; the fixed header alone is 5.
    if (dataOffset < TCP_MIN_HEADER_LENGTH) return failed(out, PACKET_ANOMALY.BAD_TCP_DATA_OFFSET);
    if (dataOffset > available) return failed(out, PACKET_ANOMALY.TRUNCATED_TCP);
    out.payloadOffset = p + dataOffset;
    out.payloadLength = available - dataOffset;
    return PACKET_ANOMALY.OK;
  }

  if (protocol === PROTO_UDP) {
    if (available < UDP_HEADER_LENGTH) return failed(out, PACKET_ANOMALY.TRUNCATED_UDP);
    out.srcPort = buf.readUInt16BE(p);
    out.dstPort = buf.readUInt16BE(p + 2);
    const udpLength = buf.readUInt16BE(p + 4);
    // RFC 768: Length counts header and data, so ≥ 8. It may be shorter than the IP payload (the rest is ignored,
    // as Linux does) but not longer, unless later fragments carry the rest.
    if (udpLength < UDP_HEADER_LENGTH || (udpLength > available && !moreFragments)) {
      return failed(out, PACKET_ANOMALY.BAD_UDP_LENGTH);
    }
    out.payloadOffset = p + UDP_HEADER_LENGTH;
    out.payloadLength = (udpLength < available ? udpLength : available) - UDP_HEADER_LENGTH;
    return PACKET_ANOMALY.OK;
  }

  if (protocol === PROTO_ICMP || protocol === PROTO_ICMPV6) {
    if (available < ICMP_MIN_LENGTH) return failed(out, PACKET_ANOMALY.TRUNCATED_ICMP);
    const type = buf.readUInt8(p);
    out.icmpType = type;
    out.icmpCode = buf.readUInt8(p + 1);
    const echo =
      protocol === PROTO_ICMP
        ? type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY
        : type === ICMPV6_ECHO_REQUEST || type === ICMPV6_ECHO_REPLY;
    if (echo) {
      if (available < ICMP_HEADER_LENGTH) return failed(out, PACKET_ANOMALY.TRUNCATED_ICMP);
      // The identifier plays the role of a port so request and reply share a flow key.
      const identifier = buf.readUInt16BE(p + 4);
      out.srcPort = identifier;
      out.dstPort = identifier;
    }
    if (available >= ICMP_HEADER_LENGTH) {
      out.payloadOffset = p + ICMP_HEADER_LENGTH;
      out.payloadLength = available - ICMP_HEADER_LENGTH;
    } else {
      out.payloadOffset = end;
    }
    return PACKET_ANOMALY.OK;
  }

  // Any other protocol (ESP, GRE, SCTP, ...): protocol number and transport offset only.
  return PACKET_ANOMALY.OK;
}

/**
 * RFC 791 §3.1 / RFC 1071: true when the IPv4 header at buf[off] sums to 0xffff. Not part of decodeInner (see the
 * file comment); for policies and diagnostics. False when the header does not fit the buffer.
 */
export function ipv4HeaderChecksumOk(buf: Uint8Array, off: number): boolean {
  if (off < 0 || off + IPV4_MIN_HEADER_LENGTH > buf.length) return false;
  const ihl = ((buf[off] as number) & IPV4_IHL_MASK) * 4;
  if (ihl < IPV4_MIN_HEADER_LENGTH || off + ihl > buf.length) return false;
  return fold(sum16(buf, off, ihl)) === 0;
}
