/**
 * Packet builders for tests, benches and the lab emulator: whole IPv4/IPv6 packets with TCP, UDP, ICMP or ICMPv6,
 * every checksum correct (RFC 1071 via ./checksum.ts). Allocate freely; never used on the packet path.
 *
 * Layouts are the ones drawn in ./decode.ts (RFC 791, RFC 8200, RFC 9293, RFC 768, RFC 792, RFC 4443).
 * Addresses are text ("10.0.0.1", "fd00::1"); IPv4 builders refuse IPv6 text and vice versa (RangeError).
 */
import { Buffer } from 'node:buffer';
import { fold, pseudoSumV4, pseudoSumV6, sum16 } from './checksum.js';
import { ipv4ToU32, isIpv4Mapped, parseIp } from './address.js';
import { IP_PROTO } from './types.js';

const IPV4_HEADER_LENGTH = 20;
const IPV6_HEADER_LENGTH = 40;
const TCP_HEADER_LENGTH = 20;
const UDP_HEADER_LENGTH = 8;
const ICMP_HEADER_LENGTH = 8;
const IPV4_FLAG_DF = 0x4000;
const IPV4_FLAG_MF = 0x2000;
const ICMP_ECHO_REQUEST = 8;
const ICMPV6_ECHO_REQUEST = 128;
const DEFAULT_TTL = 64;

const EMPTY = new Uint8Array(0);

export interface Ipv4Options {
  src: string;
  dst: string;
  protocol: number;
  /** Everything after the IPv4 header (transport header and data). */
  payload?: Uint8Array;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** In 8-byte units (RFC 791), as on the wire. */
  fragmentOffset?: number;
  /** Raw IPv4 options, padded with zeros (End of Option List) to whole 4-byte words. */
  options?: Uint8Array;
  /** Override Total Length (for malformed-packet tests); default header + payload. */
  totalLength?: number;
}

/** A whole IPv4 packet with a correct header checksum. */
export function buildIPv4(o: Ipv4Options): Buffer {
  const options = o.options ?? EMPTY;
  const optionsLength = Math.ceil(options.length / 4) * 4;
  if (optionsLength > 40) throw new RangeError('IPv4 options exceed 40 bytes');
  const headerLength = IPV4_HEADER_LENGTH + optionsLength;
  const payload = o.payload ?? EMPTY;
  const b = Buffer.alloc(headerLength + payload.length);
  b.writeUInt8(0x40 | (headerLength / 4), 0);
  b.writeUInt8((o.tos ?? 0) & 0xff, 1);
  b.writeUInt16BE((o.totalLength ?? b.length) & 0xffff, 2);
  b.writeUInt16BE((o.id ?? 0) & 0xffff, 4);
  b.writeUInt16BE(
    (o.df === true ? IPV4_FLAG_DF : 0) | (o.mf === true ? IPV4_FLAG_MF : 0) | ((o.fragmentOffset ?? 0) & 0x1fff),
    6,
  );
  b.writeUInt8((o.ttl ?? DEFAULT_TTL) & 0xff, 8);
  b.writeUInt8(o.protocol & 0xff, 9);
  b.writeUInt32BE(ipv4ToU32(o.src), 12);
  b.writeUInt32BE(ipv4ToU32(o.dst), 16);
  b.set(options, IPV4_HEADER_LENGTH);
  b.writeUInt16BE(fold(sum16(b, 0, headerLength)), 10);
  b.set(payload, headerLength);
  return b;
}

export interface Ipv6Options {
  src: string;
  dst: string;
  nextHeader: number;
  /** Everything after the fixed IPv6 header (extension headers, transport header, data). */
  payload?: Uint8Array;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

function parseIpv6(s: string): Uint32Array {
  const w = parseIp(s);
  if (isIpv4Mapped(w) && !s.includes(':')) throw new RangeError(`IPv4 address where IPv6 is needed: ${s}`);
  return w;
}

/** A whole IPv6 packet (RFC 8200 §3). */
export function buildIPv6(o: Ipv6Options): Buffer {
  const payload = o.payload ?? EMPTY;
  const b = Buffer.alloc(IPV6_HEADER_LENGTH + payload.length);
  b.writeUInt32BE(((6 << 28) | (((o.trafficClass ?? 0) & 0xff) << 20) | ((o.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  b.writeUInt16BE(payload.length, 4);
  b.writeUInt8(o.nextHeader & 0xff, 6);
  b.writeUInt8((o.hopLimit ?? DEFAULT_TTL) & 0xff, 7);
  const s = parseIpv6(o.src);
  const d = parseIpv6(o.dst);
  for (let i = 0; i < 4; i++) {
    b.writeUInt32BE(s[i]!, 8 + 4 * i);
    b.writeUInt32BE(d[i]!, 24 + 4 * i);
  }
  b.set(payload, IPV6_HEADER_LENGTH);
  return b;
}

export interface TcpOptions {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  /** TCP_FLAG bits; default ACK. */
  flags?: number;
  window?: number;
  urgent?: number;
  /** Raw TCP options, padded with zeros (EOL) to whole 4-byte words. */
  options?: Uint8Array;
  payload?: Uint8Array;
}

/** A TCP segment with a zero checksum; the IP builders fill it in. */
function tcpSegment(o: TcpOptions): Buffer {
  const options = o.options ?? EMPTY;
  const optionsLength = Math.ceil(options.length / 4) * 4;
  if (optionsLength > 40) throw new RangeError('TCP options exceed 40 bytes');
  const headerLength = TCP_HEADER_LENGTH + optionsLength;
  const payload = o.payload ?? EMPTY;
  const b = Buffer.alloc(headerLength + payload.length);
  b.writeUInt16BE(o.srcPort & 0xffff, 0);
  b.writeUInt16BE(o.dstPort & 0xffff, 2);
  b.writeUInt32BE((o.seq ?? 0) >>> 0, 4);
  b.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
  b.writeUInt8((headerLength / 4) << 4, 12);
  b.writeUInt8((o.flags ?? 0x10) & 0xff, 13);
  b.writeUInt16BE((o.window ?? 65535) & 0xffff, 14);
  b.writeUInt16BE((o.urgent ?? 0) & 0xffff, 18);
  b.set(options, TCP_HEADER_LENGTH);
  b.set(payload, headerLength);
  return b;
}

export interface UdpOptions {
  srcPort: number;
  dstPort: number;
  payload?: Uint8Array;
  /** Override the Length field (for malformed-packet tests); default header + payload. */
  length?: number;
}

function udpDatagram(o: UdpOptions): Buffer {
  const payload = o.payload ?? EMPTY;
  const b = Buffer.alloc(UDP_HEADER_LENGTH + payload.length);
  b.writeUInt16BE(o.srcPort & 0xffff, 0);
  b.writeUInt16BE(o.dstPort & 0xffff, 2);
  b.writeUInt16BE((o.length ?? b.length) & 0xffff, 4);
  b.set(payload, UDP_HEADER_LENGTH);
  return b;
}

export interface IcmpEchoOptions {
  /** Default echo request (8 for ICMP, 128 for ICMPv6). */
  type?: number;
  code?: number;
  identifier: number;
  sequence?: number;
  payload?: Uint8Array;
}

function icmpMessage(defaultType: number, o: IcmpEchoOptions): Buffer {
  const payload = o.payload ?? EMPTY;
  const b = Buffer.alloc(ICMP_HEADER_LENGTH + payload.length);
  b.writeUInt8((o.type ?? defaultType) & 0xff, 0);
  b.writeUInt8((o.code ?? 0) & 0xff, 1);
  b.writeUInt16BE(o.identifier & 0xffff, 4);
  b.writeUInt16BE((o.sequence ?? 0) & 0xffff, 6);
  b.set(payload, ICMP_HEADER_LENGTH);
  return b;
}

/** Pseudo-header checksum into l4[checksumAt] (RFC 768, RFC 9293 §3.1, RFC 8200 §8.1). */
function fillChecksumV4(l4: Buffer, checksumAt: number, src: string, dst: string, protocol: number): void {
  const partial = pseudoSumV4(ipv4ToU32(src), ipv4ToU32(dst), protocol, l4.length);
  let c = fold(sum16(l4, 0, l4.length, partial));
  // RFC 768: a computed UDP checksum of zero is sent as all ones (zero means "no checksum").
  if (c === 0 && protocol === IP_PROTO.UDP) c = 0xffff;
  l4.writeUInt16BE(c, checksumAt);
}

function fillChecksumV6(l4: Buffer, checksumAt: number, src: string, dst: string, nextHeader: number): void {
  const partial = pseudoSumV6(parseIpv6(src), parseIpv6(dst), nextHeader, l4.length);
  let c = fold(sum16(l4, 0, l4.length, partial));
  // RFC 8200 §8.1: same rule for UDP over IPv6, where a zero checksum is not allowed at all.
  if (c === 0 && nextHeader === IP_PROTO.UDP) c = 0xffff;
  l4.writeUInt16BE(c, checksumAt);
}

type Ipv4Extras = Omit<Ipv4Options, 'src' | 'dst' | 'protocol' | 'payload'>;
type Ipv6Extras = Omit<Ipv6Options, 'src' | 'dst' | 'nextHeader' | 'payload'>;

export type Ipv4TcpOptions = { src: string; dst: string } & TcpOptions & { ip?: Ipv4Extras };
export type Ipv4UdpOptions = { src: string; dst: string } & UdpOptions & { ip?: Ipv4Extras };
export type Ipv4IcmpOptions = { src: string; dst: string } & IcmpEchoOptions & { ip?: Ipv4Extras };
export type Ipv6TcpOptions = { src: string; dst: string } & TcpOptions & { ip?: Ipv6Extras };
export type Ipv6UdpOptions = { src: string; dst: string } & UdpOptions & { ip?: Ipv6Extras };
export type Ipv6IcmpOptions = { src: string; dst: string } & IcmpEchoOptions & { ip?: Ipv6Extras };

export function buildIPv4Tcp(o: Ipv4TcpOptions): Buffer {
  const l4 = tcpSegment(o);
  fillChecksumV4(l4, 16, o.src, o.dst, IP_PROTO.TCP);
  return buildIPv4({ ...o.ip, src: o.src, dst: o.dst, protocol: IP_PROTO.TCP, payload: l4 });
}

export function buildIPv4Udp(o: Ipv4UdpOptions): Buffer {
  const l4 = udpDatagram(o);
  fillChecksumV4(l4, 6, o.src, o.dst, IP_PROTO.UDP);
  return buildIPv4({ ...o.ip, src: o.src, dst: o.dst, protocol: IP_PROTO.UDP, payload: l4 });
}

/** ICMP (RFC 792) echo request by default; the checksum covers the ICMP message only. */
export function buildIPv4Icmp(o: Ipv4IcmpOptions): Buffer {
  const l4 = icmpMessage(ICMP_ECHO_REQUEST, o);
  l4.writeUInt16BE(fold(sum16(l4, 0, l4.length)), 2);
  return buildIPv4({ ...o.ip, src: o.src, dst: o.dst, protocol: IP_PROTO.ICMP, payload: l4 });
}

export function buildIPv6Tcp(o: Ipv6TcpOptions): Buffer {
  const l4 = tcpSegment(o);
  fillChecksumV6(l4, 16, o.src, o.dst, IP_PROTO.TCP);
  return buildIPv6({ ...o.ip, src: o.src, dst: o.dst, nextHeader: IP_PROTO.TCP, payload: l4 });
}

export function buildIPv6Udp(o: Ipv6UdpOptions): Buffer {
  const l4 = udpDatagram(o);
  fillChecksumV6(l4, 6, o.src, o.dst, IP_PROTO.UDP);
  return buildIPv6({ ...o.ip, src: o.src, dst: o.dst, nextHeader: IP_PROTO.UDP, payload: l4 });
}

/** ICMPv6 (RFC 4443) echo request by default; the checksum includes the IPv6 pseudo-header (§2.3). */
export function buildIPv6Icmp(o: Ipv6IcmpOptions): Buffer {
  const l4 = icmpMessage(ICMPV6_ECHO_REQUEST, o);
  fillChecksumV6(l4, 2, o.src, o.dst, IP_PROTO.ICMPV6);
  return buildIPv6({ ...o.ip, src: o.src, dst: o.dst, nextHeader: IP_PROTO.ICMPV6, payload: l4 });
}

/** Build an IPv4 or IPv6 TCP packet by the address family of `src`. */
export function buildTcp(o: Ipv4TcpOptions | Ipv6TcpOptions): Buffer {
  return o.src.includes(':') ? buildIPv6Tcp(o as Ipv6TcpOptions) : buildIPv4Tcp(o as Ipv4TcpOptions);
}

/** Build an IPv4 or IPv6 UDP packet by the address family of `src`. */
export function buildUdp(o: Ipv4UdpOptions | Ipv6UdpOptions): Buffer {
  return o.src.includes(':') ? buildIPv6Udp(o as Ipv6UdpOptions) : buildIPv4Udp(o as Ipv4UdpOptions);
}
