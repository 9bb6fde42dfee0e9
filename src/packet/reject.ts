/**
 * What a `reject` verdict sends: a TCP RST to each end of a TCP flow, or an ICMP/ICMPv6 "administratively
 * prohibited" unreachable to the sender of anything else (docs/architecture.md §3). The data plane wraps the result in the
 * flow's newest GENEVE header and sends it back through GWLB, which delivers it like any packet of the flow.
 *
 * Builders write into a caller-provided buffer at an offset (no allocation), return the bytes written, and return
 * 0 when nothing may be sent (see each function). Addresses come from the decoded packet (packet/types.ts);
 * originals are quoted from the receive buffer it was decoded from.
 *
 * TCP (RFC 9293 §3.1, layout in ./decode.ts), 20 bytes, no options, window 0.
 * ICMP destination unreachable (RFC 792), ICMPv6 destination unreachable (RFC 4443 §3.1):
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |     Type      |     Code      |          Checksum             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                             unused                            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |      As much of invoking packet as fits (see the limits below)  |
 */
import type { Buffer } from 'node:buffer';
import { fold, pseudoSumV4, pseudoSumV6, sum16 } from './checksum.js';
import { IP_PROTO, TCP_FLAG, type InnerPacket } from './types.js';

const IPV4_HEADER_BYTES = 20;
const IPV6_HEADER_BYTES = 40;
const TCP_HEADER_BYTES = 20;
const ICMP_HEADER_BYTES = 8;
const IPV4_VERSION_IHL = 0x45;
const IPV4_FLAG_DF = 0x4000;
const IPV6_VERSION_WORD = 0x60000000;
/** TTL / hop limit of packets we originate. */
const ORIGINATED_TTL = 64;
const TCP_DATA_OFFSET_5 = 0x50;

/** RFC 1812 §4.3.2.3: an ICMP error "SHOULD contain as much of the original datagram as possible without the
 * length of the ICMP datagram exceeding 576 bytes". */
export const ICMPV4_MAX_BYTES = 576;
/** RFC 4443 §2.4(c): "as much of invoking packet as possible without the ICMPv6 packet exceeding the minimum
 * IPv6 MTU" (1280, RFC 8200 §5). */
export const ICMPV6_MAX_BYTES = 1280;
export const TCP_RST_V4_BYTES = IPV4_HEADER_BYTES + TCP_HEADER_BYTES;
export const TCP_RST_V6_BYTES = IPV6_HEADER_BYTES + TCP_HEADER_BYTES;
/** Largest thing any builder here writes. */
export const REJECT_MAX_BYTES = ICMPV6_MAX_BYTES;

/** RFC 792 type 3 / RFC 4443 type 1. */
export const ICMPV4_DEST_UNREACHABLE = 3;
export const ICMPV6_DEST_UNREACHABLE = 1;
/** RFC 1812 §5.2.7.1 code 13 "Communication Administratively Prohibited"; RFC 792 code 3 "port unreachable". */
export const ICMPV4_CODE_ADMIN_PROHIBITED = 13;
export const ICMPV4_CODE_PORT_UNREACHABLE = 3;
/** RFC 4443 §3.1 code 1 "communication with destination administratively prohibited"; code 4 "port unreachable". */
export const ICMPV6_CODE_ADMIN_PROHIBITED = 1;
export const ICMPV6_CODE_PORT_UNREACHABLE = 4;

export type UnreachableKind = 'admin' | 'port';

function isV4(pkt: InnerPacket): boolean {
  return pkt.ipVersion === 4;
}

/** Writes the IP header of an originated packet from `src` to `dst` (words as in packet/types.ts). */
function writeIpHeader(out: Buffer, off: number, v4: boolean, src: Uint32Array, dst: Uint32Array, protocol: number, l4Length: number, df: boolean): number {
  if (v4) {
    out.writeUInt8(IPV4_VERSION_IHL, off);
    out.writeUInt8(0, off + 1);
    out.writeUInt16BE(IPV4_HEADER_BYTES + l4Length, off + 2);
    out.writeUInt16BE(0, off + 4);
    out.writeUInt16BE(df ? IPV4_FLAG_DF : 0, off + 6);
    out.writeUInt8(ORIGINATED_TTL, off + 8);
    out.writeUInt8(protocol, off + 9);
    out.writeUInt16BE(0, off + 10);
    out.writeUInt32BE(src[3]!, off + 12);
    out.writeUInt32BE(dst[3]!, off + 16);
    out.writeUInt16BE(fold(sum16(out, off, IPV4_HEADER_BYTES)), off + 10);
    return IPV4_HEADER_BYTES;
  }
  out.writeUInt32BE(IPV6_VERSION_WORD, off);
  out.writeUInt16BE(l4Length, off + 4);
  out.writeUInt8(protocol, off + 6);
  out.writeUInt8(ORIGINATED_TTL, off + 7);
  for (let i = 0; i < 4; i++) {
    out.writeUInt32BE(src[i]!, off + 8 + 4 * i);
    out.writeUInt32BE(dst[i]!, off + 24 + 4 * i);
  }
  return IPV6_HEADER_BYTES;
}

function l4Checksum(out: Buffer, l4Off: number, l4Length: number, v4: boolean, src: Uint32Array, dst: Uint32Array, protocol: number): number {
  const pseudo = v4 ? pseudoSumV4(src[3]!, dst[3]!, protocol, l4Length) : pseudoSumV6(src, dst, protocol, l4Length);
  return fold(sum16(out, l4Off, l4Length, pseudo));
}

/** Sequence space a segment occupies (RFC 9293 §3.4: SYN and FIN count one each). */
function segLen(pkt: InnerPacket): number {
  return pkt.payloadLength + ((pkt.tcpFlags & TCP_FLAG.SYN) !== 0 ? 1 : 0) + ((pkt.tcpFlags & TCP_FLAG.FIN) !== 0 ? 1 : 0);
}

function writeTcpRst(out: Buffer, off: number, pkt: InnerPacket, src: Uint32Array, dst: Uint32Array, sport: number, dport: number, seq: number, ack: number, flags: number): number {
  const v4 = isV4(pkt);
  const need = (v4 ? IPV4_HEADER_BYTES : IPV6_HEADER_BYTES) + TCP_HEADER_BYTES;
  if (out.length - off < need) return 0;
  const ipLen = writeIpHeader(out, off, v4, src, dst, IP_PROTO.TCP, TCP_HEADER_BYTES, true);
  const t = off + ipLen;
  out.writeUInt16BE(sport, t);
  out.writeUInt16BE(dport, t + 2);
  out.writeUInt32BE(seq >>> 0, t + 4);
  out.writeUInt32BE(ack >>> 0, t + 8);
  out.writeUInt8(TCP_DATA_OFFSET_5, t + 12);
  out.writeUInt8(flags, t + 13);
  out.writeUInt16BE(0, t + 14); // window
  out.writeUInt16BE(0, t + 16); // checksum, below
  out.writeUInt16BE(0, t + 18); // urgent pointer
  out.writeUInt16BE(l4Checksum(out, t, TCP_HEADER_BYTES, v4, src, dst, IP_PROTO.TCP), t + 16);
  return need;
}

function tcpRstAllowed(pkt: InnerPacket): boolean {
  // RFC 9293 §3.10.7.1: "An incoming segment containing a RST is discarded" — never answer a reset with one.
  return pkt.protocol === IP_PROTO.TCP && pkt.l4Offset >= 0 && (pkt.tcpFlags & TCP_FLAG.RST) === 0 && (pkt.ipVersion === 4 || pkt.ipVersion === 6);
}

/**
 * RST to the sender of `pkt`, as if from its destination. RFC 9293 §3.10.7.1:
 *   "If the incoming segment has an ACK field, the reset takes its sequence number from the ACK field of the
 *    segment, otherwise the reset has sequence number zero and the ACK field is set to the sum of the sequence
 *    number and segment length of the incoming segment."
 * SEG.ACK is exactly the sender's RCV.NXT, which RFC 5961 §3.2 requires for the RST to be accepted without a
 * challenge ACK; a sender in SYN-SENT accepts it because its ACK acknowledges the SYN (RFC 9293 §3.10.7.3).
 * Returns 0 (nothing to send) for a RST, a non-TCP packet or a too-small buffer.
 */
export function writeTcpRstToSender(out: Buffer, off: number, pkt: InnerPacket): number {
  if (!tcpRstAllowed(pkt)) return 0;
  const hasAck = (pkt.tcpFlags & TCP_FLAG.ACK) !== 0;
  const seq = hasAck ? pkt.tcpAck : 0;
  const ack = (pkt.tcpSeq + segLen(pkt)) >>> 0;
  return writeTcpRst(out, off, pkt, pkt.dst, pkt.src, pkt.dstPort, pkt.srcPort, seq, ack, TCP_FLAG.RST | TCP_FLAG.ACK);
}

/**
 * RST to the destination of `pkt`, as if from its sender, in place of `pkt` (which is not delivered). Its sequence
 * number is SEG.SEQ: the receiver has not seen this segment, so its RCV.NXT is SEG.SEQ when the segment was the
 * next in order — the exact match RFC 5961 §3.2 asks for. When the dropped bytes began earlier (several segments
 * held, then dropped), pass `seq` = the first undelivered sequence number. With ACK set in `pkt`, the RST carries
 * the same ACK (a receiver in SYN-SENT needs it acceptable, RFC 9293 §3.10.7.3).
 */
export function writeTcpRstToReceiver(out: Buffer, off: number, pkt: InnerPacket, seq: number = pkt.tcpSeq): number {
  if (!tcpRstAllowed(pkt)) return 0;
  const hasAck = (pkt.tcpFlags & TCP_FLAG.ACK) !== 0;
  return writeTcpRst(out, off, pkt, pkt.src, pkt.dst, pkt.srcPort, pkt.dstPort, seq, hasAck ? pkt.tcpAck : 0, hasAck ? TCP_FLAG.RST | TCP_FLAG.ACK : TCP_FLAG.RST);
}

/** RFC 1122 §3.2.2 / RFC 4443 §2.4(e): no ICMP error about an ICMP error. */
function isIcmpError(pkt: InnerPacket): boolean {
  if (pkt.protocol === IP_PROTO.ICMP) {
    const t = pkt.icmpType;
    return t === 3 || t === 4 || t === 5 || t === 11 || t === 12 || t < 0;
  }
  if (pkt.protocol === IP_PROTO.ICMPV6) return pkt.icmpType < 128; // RFC 4443 §2.1: types 0-127 are errors
  return false;
}

/** Multicast, broadcast or unspecified: RFC 1122 §3.2.2 and RFC 4443 §2.4(e) forbid errors about these. */
function isGroupOrUnspecified(v4: boolean, a: Uint32Array): boolean {
  if (v4) {
    const x = a[3]!;
    return x >>> 28 === 0xe || x === 0xffffffff || x === 0;
  }
  if (a[0]! >>> 24 === 0xff) return true;
  return a[0] === 0 && a[1] === 0 && a[2] === 0 && a[3] === 0;
}

/**
 * ICMP (IPv4: type 3) or ICMPv6 (type 1) destination unreachable to the sender of `pkt`, from its destination,
 * quoting `pkt` (the invoking packet, read from buf at pkt.l3Offset) as far as the RFC limits allow. Default code:
 * administratively prohibited (ICMPv4 13, ICMPv6 1); 'port' gives port unreachable (ICMPv4 3, ICMPv6 4).
 * Returns 0 when no error may be sent: `pkt` is itself an ICMP error, a non-first fragment, or addressed to or
 * from a multicast/broadcast/unspecified address; or the buffer is too small.
 */
export function writeIcmpUnreachable(out: Buffer, off: number, pkt: InnerPacket, buf: Buffer, kind: UnreachableKind = 'admin'): number {
  const v4 = isV4(pkt);
  if (!v4 && pkt.ipVersion !== 6) return 0;
  // RFC 1122 §3.2.2: not for "a datagram fragment other than the first fragment".
  if (pkt.isLaterFragment) return 0;
  if (isIcmpError(pkt)) return 0;
  if (isGroupOrUnspecified(v4, pkt.dst) || isGroupOrUnspecified(v4, pkt.src)) return 0;
  const ipLen = v4 ? IPV4_HEADER_BYTES : IPV6_HEADER_BYTES;
  const limit = v4 ? ICMPV4_MAX_BYTES : ICMPV6_MAX_BYTES;
  const available = Math.min(pkt.ipLength, buf.length - pkt.l3Offset);
  const quoted = Math.min(available, limit - ipLen - ICMP_HEADER_BYTES);
  if (quoted <= 0) return 0;
  const l4Length = ICMP_HEADER_BYTES + quoted;
  const total = ipLen + l4Length;
  if (out.length - off < total) return 0;
  const protocol = v4 ? IP_PROTO.ICMP : IP_PROTO.ICMPV6;
  writeIpHeader(out, off, v4, pkt.dst, pkt.src, protocol, l4Length, false);
  const m = off + ipLen;
  out.writeUInt8(v4 ? ICMPV4_DEST_UNREACHABLE : ICMPV6_DEST_UNREACHABLE, m);
  const code = v4 ? (kind === 'port' ? ICMPV4_CODE_PORT_UNREACHABLE : ICMPV4_CODE_ADMIN_PROHIBITED) : kind === 'port' ? ICMPV6_CODE_PORT_UNREACHABLE : ICMPV6_CODE_ADMIN_PROHIBITED;
  out.writeUInt8(code, m + 1);
  out.writeUInt16BE(0, m + 2);
  out.writeUInt32BE(0, m + 4); // unused
  buf.copy(out, m + ICMP_HEADER_BYTES, pkt.l3Offset, pkt.l3Offset + quoted);
  // ICMPv4: checksum of the ICMP message alone (RFC 792); ICMPv6: with the pseudo-header (RFC 4443 §2.3).
  const c = v4 ? fold(sum16(out, m, l4Length)) : l4Checksum(out, m, l4Length, false, pkt.dst, pkt.src, IP_PROTO.ICMPV6);
  out.writeUInt16BE(c, m + 2);
  return total;
}

/**
 * The data plane's RejectBuilder: TCP → RST toward the sender or the receiver of `pkt`; anything else → an ICMP
 * unreachable toward the sender (nothing toward the receiver). `towardSender` is relative to this packet: for a
 * packet from the client, toward the sender is toward the client.
 */
export function writeReject(pkt: InnerPacket, buf: Buffer, towardSender: boolean, out: Buffer, off: number): number {
  if (pkt.protocol === IP_PROTO.TCP) return towardSender ? writeTcpRstToSender(out, off, pkt) : writeTcpRstToReceiver(out, off, pkt);
  return towardSender ? writeIcmpUnreachable(out, off, pkt, buf) : 0;
}
