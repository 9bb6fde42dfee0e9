import t from 'tap';
import { Buffer } from 'node:buffer';
import { buildIPv4, buildIPv4Udp, buildIPv6Udp, buildTcp, buildIPv4Icmp } from '../../src/packet/build.js';
import { decodeInner, INNER_PROTOCOL_ANY } from '../../src/packet/decode.js';
import { createInnerPacket, TCP_FLAG, type InnerPacket } from '../../src/packet/types.js';
import { ICMPV4_MAX_BYTES, ICMPV6_MAX_BYTES, writeIcmpUnreachable, writeReject, writeTcpRstToReceiver, writeTcpRstToSender } from '../../src/packet/reject.js';

const { SYN, ACK, PSH, RST, FIN } = TCP_FLAG;

// ---- independent checks (no code from src/packet/checksum.ts) ---------------------------------------------

/** RFC 1071 by the book: 16-bit one's complement sum, end-around carry, complemented. */
function internetChecksum(...parts: Uint8Array[]): number {
  const all = Buffer.concat(parts.map((p) => Buffer.from(p)));
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) {
    sum += ((all[i] ?? 0) << 8) + (all[i + 1] ?? 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return ~sum & 0xffff;
}

/** A checksummed region with its checksum in place sums to zero (RFC 1071 §1). */
function verifies(...parts: Uint8Array[]): boolean {
  return internetChecksum(...parts) === 0;
}

function pseudoV4(ip: Buffer, proto: number, l4len: number): Buffer {
  const p = Buffer.alloc(12);
  ip.copy(p, 0, 12, 20);
  p[9] = proto;
  p.writeUInt16BE(l4len, 10);
  return p;
}

function pseudoV6(ip: Buffer, proto: number, l4len: number): Buffer {
  const p = Buffer.alloc(40);
  ip.copy(p, 0, 8, 40);
  p.writeUInt32BE(l4len, 32);
  p[39] = proto;
  return p;
}

interface Rst {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  ipOk: boolean;
  tcpOk: boolean;
  ttl: number;
}

/** Reads an originated IPv4/IPv6 + TCP packet field by field. */
function readRst(b: Buffer): Rst {
  const v = (b[0] as number) >> 4;
  const ipLen = v === 4 ? 20 : 40;
  const tcp = b.subarray(ipLen, ipLen + 20);
  const addr = (o: number, n: number): string => (n === 4 ? [...b.subarray(o, o + 4)].join('.') : b.subarray(o, o + 16).toString('hex'));
  return {
    src: v === 4 ? addr(12, 4) : addr(8, 16),
    dst: v === 4 ? addr(16, 4) : addr(24, 16),
    sport: tcp.readUInt16BE(0),
    dport: tcp.readUInt16BE(2),
    seq: tcp.readUInt32BE(4),
    ack: tcp.readUInt32BE(8),
    flags: tcp[13] as number,
    ipOk: v === 4 ? verifies(b.subarray(0, 20)) && b.readUInt16BE(2) === 40 : b.readUInt16BE(4) === 20 && b[6] === 6,
    tcpOk: verifies(v === 4 ? pseudoV4(b, 6, 20) : pseudoV6(b, 6, 20), tcp) && tcp[12] === 0x50,
    ttl: v === 4 ? (b[8] as number) : (b[7] as number),
  };
}

function decoded(bytes: Buffer): { buf: Buffer; pkt: InnerPacket } {
  const buf = Buffer.alloc(bytes.length + 50);
  bytes.copy(buf, 30);
  const pkt = createInnerPacket();
  const a = decodeInner(buf, 30, bytes.length, INNER_PROTOCOL_ANY, pkt);
  if (a !== 0) throw new Error(`anomaly ${a}`);
  return { buf, pkt };
}

// ---- TCP RST ------------------------------------------------------------------------------------------------

t.test('RST for a data segment, toward both ends (IPv4)', async (t) => {
  const { pkt } = decoded(buildTcp({ src: '10.0.0.1', dst: '93.184.216.34', srcPort: 40000, dstPort: 443, seq: 0xfffffff0, ack: 777, flags: ACK | PSH, payload: Buffer.alloc(100) }));
  const out = Buffer.alloc(200);
  const n1 = writeTcpRstToSender(out, 10, pkt);
  t.equal(n1, 40);
  const toClient = readRst(out.subarray(10, 10 + n1));
  t.match(toClient, { src: '93.184.216.34', dst: '10.0.0.1', sport: 443, dport: 40000, ipOk: true, tcpOk: true, ttl: 64 });
  t.equal(toClient.seq, 777, 'SEQ = the segment\'s ACK: exactly the client\'s RCV.NXT (RFC 9293 §3.10.7.1, RFC 5961 §3.2)');
  t.equal(toClient.ack, (0xfffffff0 + 100) >>> 0, 'ACK = SEG.SEQ + SEG.LEN, modulo 2^32');
  t.equal(toClient.flags, RST | ACK);

  const n2 = writeTcpRstToReceiver(out, 0, pkt);
  const toServer = readRst(out.subarray(0, n2));
  t.match(toServer, { src: '10.0.0.1', dst: '93.184.216.34', sport: 40000, dport: 443, ipOk: true, tcpOk: true });
  t.equal(toServer.seq, 0xfffffff0, 'SEQ = SEG.SEQ: the server never got this segment, so that is its RCV.NXT');
  t.equal(toServer.ack, 777);
  t.equal(toServer.flags, RST | ACK);
  const n3 = writeTcpRstToReceiver(out, 0, pkt, 12345);
  t.equal(readRst(out.subarray(0, n3)).seq, 12345, 'the first undelivered byte when several segments were held');
});

t.test('RST for a SYN (no ACK field): SEQ 0, ACK = SEG.SEQ + 1', async (t) => {
  const { pkt } = decoded(buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 22, seq: 1000, flags: SYN }));
  const out = Buffer.alloc(60);
  const r = readRst(out.subarray(0, writeTcpRstToSender(out, 0, pkt)));
  t.match(r, { seq: 0, ack: 1001, flags: RST | ACK, tcpOk: true }, 'a client in SYN-SENT accepts it: it acknowledges the SYN (RFC 9293 §3.10.7.3)');
  const s = readRst(out.subarray(0, writeTcpRstToReceiver(out, 0, pkt)));
  t.match(s, { seq: 1000, ack: 0, flags: RST, tcpOk: true });
  const { pkt: fin } = decoded(buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 22, seq: 50, ack: 9, flags: FIN | ACK, payload: Buffer.alloc(3) }));
  t.equal(readRst(out.subarray(0, writeTcpRstToSender(out, 0, fin))).ack, 54, 'FIN counts one in SEG.LEN');
});

t.test('RST over IPv6', async (t) => {
  const { pkt } = decoded(buildTcp({ src: '2001:db8::1', dst: '2001:db8::2', srcPort: 5555, dstPort: 80, seq: 1, ack: 2, flags: ACK, payload: Buffer.from('GET') }));
  const out = Buffer.alloc(100);
  const n = writeTcpRstToSender(out, 0, pkt);
  t.equal(n, 60);
  const r = readRst(out.subarray(0, n));
  t.match(r, { src: '20010db8000000000000000000000002', dst: '20010db8000000000000000000000001', sport: 80, dport: 5555, seq: 2, ack: 4, ipOk: true, tcpOk: true, ttl: 64 });
  t.equal(out.readUInt32BE(0) >>> 28, 6);
  const back = decoded(out.subarray(0, n));
  t.equal(back.pkt.tcpFlags, RST | ACK, 'our own decoder reads it too');
});

t.test('nothing is sent when nothing may be', async (t) => {
  const out = Buffer.alloc(100);
  const { pkt: rst } = decoded(buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, flags: RST }));
  t.equal(writeTcpRstToSender(out, 0, rst), 0, 'never a RST for a RST (RFC 9293 §3.10.7.1)');
  t.equal(writeTcpRstToReceiver(out, 0, rst), 0);
  const { pkt: syn } = decoded(buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, flags: SYN }));
  t.equal(writeTcpRstToSender(Buffer.alloc(39), 0, syn), 0, 'buffer too small');
  t.equal(writeTcpRstToSender(out, 70, syn), 0, 'offset leaves too little room');
  const { pkt: udp } = decoded(buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2 }));
  t.equal(writeTcpRstToSender(out, 0, udp), 0, 'not TCP');
});

// ---- ICMP unreachable ---------------------------------------------------------------------------------------

t.test('ICMPv4 administratively prohibited, quoting the datagram', async (t) => {
  const original = buildIPv4Udp({ src: '10.0.0.1', dst: '198.51.100.7', srcPort: 5353, dstPort: 53, payload: Buffer.from('query') });
  const { buf, pkt } = decoded(original);
  const out = Buffer.alloc(700);
  const n = writeIcmpUnreachable(out, 4, pkt, buf);
  const m = out.subarray(4, 4 + n);
  t.equal(n, 20 + 8 + original.length);
  t.ok(verifies(m.subarray(0, 20)), 'IPv4 header checksum');
  t.equal(m[9], 1, 'protocol ICMP');
  t.equal([...m.subarray(12, 16)].join('.'), '198.51.100.7', 'from the original destination');
  t.equal([...m.subarray(16, 20)].join('.'), '10.0.0.1', 'to the sender');
  t.equal(m[20], 3, 'type 3 destination unreachable');
  t.equal(m[21], 13, 'code 13 communication administratively prohibited (RFC 1812 §5.2.7.1)');
  t.ok(verifies(m.subarray(20)), 'ICMP checksum over the message (RFC 792)');
  t.same(m.subarray(28), original, 'the whole original datagram quoted');
  const p = Buffer.alloc(700);
  const np = writeIcmpUnreachable(p, 0, pkt, buf, 'port');
  t.equal(p[21], 3, 'port unreachable on request');
  t.equal(np, n);
});

t.test('quoting stops at 576 bytes (IPv4) and 1280 bytes (IPv6)', async (t) => {
  const big4 = buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, payload: Buffer.alloc(3000, 7) });
  const d4 = decoded(big4);
  const out = Buffer.alloc(2000);
  const n4 = writeIcmpUnreachable(out, 0, d4.pkt, d4.buf);
  t.equal(n4, ICMPV4_MAX_BYTES);
  t.ok(verifies(out.subarray(20, n4)));
  t.same(out.subarray(28, n4), big4.subarray(0, ICMPV4_MAX_BYTES - 28));

  const big6 = buildIPv6Udp({ src: 'fd00::1', dst: 'fd00::2', srcPort: 1, dstPort: 2, payload: Buffer.alloc(3000, 9) });
  const d6 = decoded(big6);
  const n6 = writeIcmpUnreachable(out, 0, d6.pkt, d6.buf);
  t.equal(n6, ICMPV6_MAX_BYTES);
  t.equal(out.readUInt16BE(4), ICMPV6_MAX_BYTES - 40, 'payload length');
  t.equal(out[6], 58, 'next header ICMPv6');
  t.equal(out[40], 1, 'type 1 destination unreachable');
  t.equal(out[41], 1, 'code 1 administratively prohibited (RFC 4443 §3.1)');
  t.ok(verifies(pseudoV6(out, 58, n6 - 40), out.subarray(40, n6)), 'ICMPv6 checksum with the pseudo-header (RFC 4443 §2.3)');
  t.same(out.subarray(48, n6), big6.subarray(0, ICMPV6_MAX_BYTES - 48));
  t.equal(out.subarray(8, 24).toString('hex'), 'fd000000000000000000000000000002', 'from the original destination');
});

t.test('no ICMP error about an ICMP error, a later fragment, or a group address', async (t) => {
  const out = Buffer.alloc(700);
  const unreachable = decoded(buildIPv4Icmp({ src: '10.0.0.1', dst: '10.0.0.2', identifier: 1, type: 3, code: 1 }));
  t.equal(writeIcmpUnreachable(out, 0, unreachable.pkt, unreachable.buf), 0, 'RFC 1122 §3.2.2');
  const echo = decoded(buildIPv4Icmp({ src: '10.0.0.1', dst: '10.0.0.2', identifier: 1 }));
  t.ok(writeIcmpUnreachable(out, 0, echo.pkt, echo.buf) > 0, 'an echo request may be refused');
  const mcast = decoded(buildIPv4Udp({ src: '10.0.0.1', dst: '224.0.0.251', srcPort: 5353, dstPort: 5353 }));
  t.equal(writeIcmpUnreachable(out, 0, mcast.pkt, mcast.buf), 0, 'multicast destination');
  const bcast = decoded(buildIPv4Udp({ src: '10.0.0.1', dst: '255.255.255.255', srcPort: 68, dstPort: 67 }));
  t.equal(writeIcmpUnreachable(out, 0, bcast.pkt, bcast.buf), 0, 'broadcast');
  const later = decoded(buildIPv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 17, payload: Buffer.alloc(16), fragmentOffset: 10 }));
  t.equal(writeIcmpUnreachable(out, 0, later.pkt, later.buf), 0, 'non-first fragment');
  const v6err = decoded(buildIPv6Udp({ src: 'ff02::1', dst: 'fd00::2', srcPort: 1, dstPort: 2 }));
  t.equal(writeIcmpUnreachable(out, 0, v6err.pkt, v6err.buf), 0, 'multicast source');
  t.equal(writeIcmpUnreachable(Buffer.alloc(30), 0, echo.pkt, echo.buf), 0, 'buffer too small');
});

t.test('writeReject: RST both ways for TCP, ICMP toward the sender otherwise', async (t) => {
  const out = Buffer.alloc(700);
  const tcp = decoded(buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, seq: 5, flags: SYN }));
  t.equal(writeReject(tcp.pkt, tcp.buf, true, out, 0), 40);
  t.equal(readRst(out).dst, '10.0.0.1');
  t.equal(writeReject(tcp.pkt, tcp.buf, false, out, 0), 40);
  t.equal(readRst(out).dst, '10.0.0.2');
  const udp = decoded(buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2 }));
  t.ok(writeReject(udp.pkt, udp.buf, true, out, 0) > 0);
  t.equal(writeReject(udp.pkt, udp.buf, false, out, 0), 0, 'nothing toward the receiver of a UDP datagram');
});
