/**
 * The decoded view of one inner IP packet (the bare IPv4/IPv6 packet GWLB carries inside GENEVE).
 *
 * One instance is allocated per worker and reused for every packet (gopacket style: decode in place, no
 * per-packet allocation). The decoder resets every field on every call. Offsets are absolute offsets into the
 * buffer that was decoded, so stages read payload bytes as views, never copies.
 *
 * Addresses are always four 32-bit words in network order of significance (word 0 = most significant). IPv4
 * addresses are stored IPv4-mapped (::ffff:a.b.c.d → [0, 0, 0xffff, a.b.c.d]) so keys and comparisons are
 * uniform across families.
 */
export interface InnerPacket {
  /** PACKET_ANOMALY code of the last decode; 0 (OK) when the packet is usable. */
  anomaly: number;
  /** 4 or 6; 0 when undecodable. */
  ipVersion: number;
  /** IANA protocol number of the transport header found (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, others verbatim). */
  protocol: number;
  /** Offset of the IP header in the buffer. */
  l3Offset: number;
  /** Offset of the transport header (after IPv4 options / IPv6 extension headers); -1 when none (e.g. non-first fragment). */
  l4Offset: number;
  /** Offset and length of the transport payload (TCP/UDP/ICMP data); length 0 when none. */
  payloadOffset: number;
  payloadLength: number;
  /** Total length of the IP packet per its own header (≤ bytes available). */
  ipLength: number;
  readonly src: Uint32Array; // length 4
  readonly dst: Uint32Array; // length 4
  /** TCP/UDP ports; for ICMP/ICMPv6 echo: srcPort = dstPort = identifier; otherwise 0. */
  srcPort: number;
  dstPort: number;
  /** TCP only (else 0): flags byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80). */
  tcpFlags: number;
  tcpSeq: number;
  tcpAck: number;
  tcpWindow: number;
  /** ICMP/ICMPv6 only (else -1). */
  icmpType: number;
  icmpCode: number;
  /**
   * IPv4 MF set or fragment offset ≠ 0, or an IPv6 Fragment header with M set or offset ≠ 0. An IPv6 atomic
   * fragment (Fragment header with offset 0 and M = 0, RFC 6946 §4) is a whole packet: false.
   */
  isFragment: boolean;
  /** True when this is a non-first fragment (no transport header in it). */
  isLaterFragment: boolean;
  /**
   * Fragments only (isFragment; else 0 / false / 0): Identification (IPv4 16 bits, RFC 791 §3.1; IPv6 32 bits,
   * RFC 8200 §4.5), Fragment Offset in bytes, the MF / M flag, and the buffer offset where the fragment's data
   * (the fragmentable part, which Fragment Offset positions) starts: after the IPv4 header, or after the IPv6
   * Fragment header. The fragment's data runs to l3Offset + ipLength.
   */
  fragmentId: number;
  fragmentOffset: number;
  moreFragments: boolean;
  fragmentDataOffset: number;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl: number;
}

export function createInnerPacket(): InnerPacket {
  return {
    anomaly: 0,
    ipVersion: 0,
    protocol: 0,
    l3Offset: 0,
    l4Offset: -1,
    payloadOffset: 0,
    payloadLength: 0,
    ipLength: 0,
    src: new Uint32Array(4),
    dst: new Uint32Array(4),
    srcPort: 0,
    dstPort: 0,
    tcpFlags: 0,
    tcpSeq: 0,
    tcpAck: 0,
    tcpWindow: 0,
    icmpType: -1,
    icmpCode: -1,
    isFragment: false,
    isLaterFragment: false,
    fragmentId: 0,
    fragmentOffset: 0,
    moreFragments: false,
    fragmentDataOffset: 0,
    ttl: 0,
  };
}

export const IP_PROTO = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ICMPV6: 58,
} as const;

export const TCP_FLAG = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;
