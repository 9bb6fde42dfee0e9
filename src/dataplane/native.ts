/**
 * Typed face of the small N-API addon (native/gwlb_net.c) that gives the data plane what Node's dgram cannot:
 * SO_REUSEPORT socket groups with symmetric inner-address steering, recvmmsg/sendmmsg batches into one
 * preallocated buffer, IP_PKTINFO (which local address GWLB sent to), a raw IPv4 socket for the return path
 * (source port = GWLB's port, as docs/architecture.md §2 requires) and TUN devices for the lab.
 *
 * Addresses cross the boundary as unsigned 32-bit numbers in host order of significance
 * (127.0.0.1 === 0x7f000001). Every call that can fail throws an Error whose message starts with the syscall
 * name and whose `code` is the errno name (e.g. 'EADDRINUSE'); "would block" is never an error (returns 0).
 */
import { getRandomValues } from 'node:crypto';
import { createRequire } from 'node:module';

export interface PollHandle {
  /** Stop watching; idempotent. */
  close(): void;
}

export interface RecvBatchArrays {
  /** Bytes received per slot; a datagram larger than the slot is reported with truncated[i] = 1. */
  lens: Uint32Array;
  srcAddr: Uint32Array;
  srcPort: Uint16Array;
  /** Local address the datagram was sent to (IP_PKTINFO ipi_addr). */
  dstAddr: Uint32Array;
  truncated: Uint8Array;
}

export interface SendBatchArrays {
  /** Offset of each datagram's UDP payload in the buffer; at least 28 bytes of headroom must precede it. */
  offs: Uint32Array;
  lens: Uint32Array;
  srcAddr: Uint32Array;
  dstAddr: Uint32Array;
  srcPort: Uint16Array;
  dstPort: Uint16Array;
}

export interface NativeNet {
  /**
   * Opens `count` non-blocking UDP sockets bound to addr:port with SO_REUSEPORT, in index order, each with
   * IP_PKTINFO and SO_RXQ_OVFL enabled and SO_RCVBUF/SO_SNDBUF set to bufBytes (SO_*BUFFORCE when permitted).
   * When count > 1 a classic BPF program (SO_ATTACH_REUSEPORT_CBPF) steers each datagram to socket
   * steeringIndex(inner src, inner dst, count, steeringKey) so both directions of a flow reach the same socket;
   * datagrams too short to carry an inner address go to socket 0. `steeringKey` (STEERING_KEY_WORDS words,
   * newSteeringKey()) is baked into the program: draw a fresh one per start so outsiders cannot aim flows.
   */
  openUdpGroup(addr: number, port: number, count: number, bufBytes: number, steeringKey: Uint32Array): number[];
  /** One plain non-blocking UDP socket (port 0 = ephemeral), IP_PKTINFO on. */
  openUdp(addr: number, port: number, bufBytes: number): number;
  /** Local port of a bound socket. */
  localPort(fd: number): number;
  /** socket(AF_INET, SOCK_RAW, IPPROTO_RAW): sends whole IPv4 packets we build (needs CAP_NET_RAW). */
  openRawSend(bufBytes: number): number;
  /**
   * socket(AF_INET, SOCK_RAW, IPPROTO_UDP), non-blocking: receives a copy of every UDP datagram the host
   * receives, IPv4 header included. For tests that must check the UDP header and checksum we sent.
   */
  openRawUdpRecv(bufBytes: number): number;
  /**
   * recvmmsg(MSG_DONTWAIT) up to maxCount datagrams. Datagram i lands at buf[i * slotSize + headroom ...].
   * Returns the count (0 when nothing is waiting). stats[0] += kernel drops reported by SO_RXQ_OVFL since the
   * previous call (the counter is cumulative in the kernel; the addon keeps the last value per fd).
   */
  recvBatch(fd: number, buf: Buffer, slotSize: number, headroom: number, maxCount: number, out: RecvBatchArrays, stats: Float64Array): number;
  /**
   * For each i < count: writes a 20-byte IPv4 header (TTL 64, DF clear, ID from a counter, header checksum)
   * and an 8-byte UDP header with a correct checksum (RFC 768; 0 transmitted as 0xFFFF) into the 28 bytes
   * before offs[i], then sendmmsg()s them all on the raw fd. Returns how many were sent. A datagram whose own
   * send fails (EACCES, EMSGSIZE, EHOSTUNREACH...) is skipped and the rest go on; a full send buffer
   * (EAGAIN/ENOBUFS) is retried a few times, then the rest is left unsent. Throws only for errors of the
   * socket itself (EBADF, ENOTSOCK...). `stats`, when given, accumulates SEND_STAT (see below).
   */
  sendRawBatch(rawFd: number, buf: Buffer, arr: SendBatchArrays, count: number, stats?: Float64Array): number;
  /** sendmmsg on a UDP socket: payload offs[i]/lens[i] to dstAddr[i]:dstPort[i] (source = the socket's port); errors as sendRawBatch. */
  sendUdpBatch(fd: number, buf: Buffer, arr: SendBatchArrays, count: number, stats?: Float64Array): number;
  /** recvfrom for one datagram (tests, prober): returns length, 0 when nothing waits; fills info [srcAddr, srcPort, dstAddr]. */
  recvOne(fd: number, buf: Buffer, info: Float64Array): number;
  /** sendto for one datagram. */
  sendOne(fd: number, buf: Buffer, off: number, len: number, dstAddr: number, dstPort: number): number;
  /** Calls `onReadable` from the event loop each time fd is readable (uv_poll). */
  poll(fd: number, onReadable: () => void): PollHandle;
  close(fd: number): void;
  /** Opens /dev/net/tun as IFF_TUN | IFF_NO_PI named `name`, non-blocking. Returns fd. */
  openTun(name: string): number;
  /** read(2)/write(2) on a non-blocking fd (TUN): returns bytes, 0 on EAGAIN. */
  readFd(fd: number, buf: Buffer, off: number, len: number): number;
  writeFd(fd: number, buf: Buffer, off: number, len: number): number;
  /**
   * The steering function the BPF program computes with `steeringKey` (native/gwlb_net.c explains it):
   * symmetric in src and dst, addresses as InnerPacket words (IPv4 mapped). For tests and the health prober.
   */
  steeringIndex(innerSrcWords: Uint32Array, innerDstWords: Uint32Array, count: number, steeringKey: Uint32Array): number;
}

/** Words (32-bit) of the steering key: 64 bits. */
export const STEERING_KEY_WORDS = 2;

/** A random steering key from the CSPRNG, one per start of the appliance. */
export function newSteeringKey(): Uint32Array {
  return getRandomValues(new Uint32Array(STEERING_KEY_WORDS));
}

/** Slots of the optional `stats` array of sendRawBatch/sendUdpBatch (native/gwlb_net.c SEND_STAT_*). */
export const SEND_STAT = {
  /** += datagrams skipped because their own send failed. */
  FAILED: 0,
  /** += UDP payload bytes sent. */
  BYTES: 1,
  /** = errno (positive) of the latest per-datagram failure. */
  ERRNO: 2,
} as const;
export const SEND_STAT_SLOTS = 3;

let cached: NativeNet | undefined;

/** Loads build/Release/gwlb_net.node (built by `npm run build` via node-gyp). */
export function loadNative(): NativeNet {
  if (cached === undefined) {
    const require = createRequire(import.meta.url);
    cached = require('../../build/Release/gwlb_net.node') as NativeNet;
  }
  return cached;
}
