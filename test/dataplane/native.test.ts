/**
 * The native addon (native/gwlb_net.c) against real loopback sockets: no mocks. Ports are ephemeral so tap's
 * parallel test processes never collide; the one fixed port (raw-send source 40000) is only ever a source.
 * Checksums are verified with a one's-complement sum written here, independent of src/packet/checksum.ts
 * and of the C code.
 */
import t from 'tap';
import type { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { loadNative, newSteeringKey, SEND_STAT, SEND_STAT_SLOTS, STEERING_KEY_WORDS } from '../../src/dataplane/native.js';
import type { RecvBatchArrays, SendBatchArrays } from '../../src/dataplane/native.js';

const net = loadNative();
const ADDON_PATH = createRequire(import.meta.url).resolve('../../build/Release/gwlb_net.node');

const ip = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
const LOCALHOST = ip(127, 0, 0, 1);
const LOOP_2 = ip(127, 0, 0, 2);
const LOOP_3 = ip(127, 0, 0, 3);
const ANY = 0;
const BUF_1MIB = 1024 * 1024;
const MAX_DATAGRAM = 8568; // 8500-byte inner packet + 68 bytes of GWLB overhead (docs/architecture.md §2)
const SLOT = 9216;
const HEADROOM = 28;
const RAW_SRC_PORT = 40000;

function recvArrays(n: number): RecvBatchArrays {
  return {
    lens: new Uint32Array(n),
    srcAddr: new Uint32Array(n),
    srcPort: new Uint16Array(n),
    dstAddr: new Uint32Array(n),
    truncated: new Uint8Array(n),
  };
}

function sendArrays(n: number): SendBatchArrays {
  return {
    offs: new Uint32Array(n),
    lens: new Uint32Array(n),
    srcAddr: new Uint32Array(n),
    dstAddr: new Uint32Array(n),
    srcPort: new Uint16Array(n),
    dstPort: new Uint16Array(n),
  };
}

/** Opens fds and closes them at the end of the subtest. */
function track(t: Test, ...fds: number[]): number[] {
  t.teardown(() => {
    for (const fd of fds) net.close(fd);
  });
  return fds;
}

/** RFC 1071 one's-complement sum of big-endian 16-bit words, odd byte padded with zero on the right. */
function onesSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** RFC 768 checksum of a UDP segment (header with checksum field zeroed, and data) over IPv4. */
function udpChecksum(src: number, dst: number, segment: Uint8Array): number {
  const copy = Buffer.from(segment);
  copy.writeUInt16BE(0, 6);
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(src, 0);
  pseudo.writeUInt32BE(dst, 4);
  pseudo.writeUInt16BE(17, 8); // zero byte, then protocol 17
  pseudo.writeUInt16BE(segment.length, 10);
  const c = ~onesSum(copy, onesSum(pseudo)) & 0xffff;
  return c === 0 ? 0xffff : c;
}

/** A GWLB-shaped GENEVE datagram (RFC 8926 §3.4 + the three AWS options) around a minimal inner packet. */
function geneve(protocol: number, innerSrc: Uint8Array, innerDst: Uint8Array): Buffer {
  const options = Buffer.from('01080102' + '0123456789abcdef' + '01080202' + '0000000000000000' + '01080301' + 'cafef00d', 'hex');
  const base = Buffer.alloc(8);
  base.writeUInt8(options.length / 4, 0); // Ver 0, Opt Len in 4-byte words
  base.writeUInt16BE(protocol, 2);
  let inner: Buffer;
  if (protocol === 0x0800) {
    inner = Buffer.alloc(28);
    inner.writeUInt8(0x45, 0);
    inner.writeUInt16BE(28, 2);
    inner.writeUInt8(17, 9);
    inner.set(innerSrc, 12);
    inner.set(innerDst, 16);
  } else {
    inner = Buffer.alloc(48);
    inner.writeUInt8(0x60, 0);
    inner.writeUInt8(17, 6);
    inner.set(innerSrc, 8);
    inner.set(innerDst, 24);
  }
  return Buffer.concat([base, options, inner]);
}

function words(addr: Uint8Array): Uint32Array {
  const b = Buffer.from(addr);
  if (b.length === 4) return Uint32Array.of(0, 0, 0xffff, b.readUInt32BE(0));
  return Uint32Array.of(b.readUInt32BE(0), b.readUInt32BE(4), b.readUInt32BE(8), b.readUInt32BE(12));
}

/** Every datagram waiting on fd, copied out, in arrival order. */
function drain(fd: number): Buffer[] {
  const out: Buffer[] = [];
  const buf = Buffer.alloc(SLOT * 64);
  const arr = recvArrays(64);
  const stats = new Float64Array(1);
  for (;;) {
    const n = net.recvBatch(fd, buf, SLOT, 0, 64, arr, stats);
    if (n === 0) return out;
    for (let i = 0; i < n; i++) out.push(Buffer.from(buf.subarray(i * SLOT, i * SLOT + (arr.lens[i] ?? 0))));
  }
}

t.test('recvBatch fills lengths, addresses, IP_PKTINFO and slots for several datagrams', (t) => {
  const [rx, tx] = track(t, net.openUdp(ANY, 0, BUF_1MIB), net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const rxPort = net.localPort(rx!);
  const txPort = net.localPort(tx!);
  const sizes = [1, 100, 1401, MAX_DATAGRAM, 0];
  const payloads = sizes.map((n) => randomBytes(n));
  for (const p of payloads) t.equal(net.sendOne(tx!, p, 0, p.length, LOOP_3, rxPort), p.length);

  const buf = Buffer.alloc(SLOT * 8, 0xaa);
  const arr = recvArrays(8);
  const stats = new Float64Array(1);
  t.equal(net.recvBatch(rx!, buf, SLOT, HEADROOM, 8, arr, stats), sizes.length);
  payloads.forEach((p, i) => {
    t.equal(arr.lens[i], p.length, `length of datagram ${i}`);
    t.equal(arr.srcAddr[i], LOCALHOST);
    t.equal(arr.srcPort[i], txPort);
    t.equal(arr.dstAddr[i], LOOP_3, 'IP_PKTINFO reports the address the datagram was sent to');
    t.equal(arr.truncated[i], 0);
    t.ok(buf.subarray(i * SLOT + HEADROOM, i * SLOT + HEADROOM + p.length).equals(p), `slot ${i} holds the bytes`);
    t.ok(buf.subarray(i * SLOT, i * SLOT + HEADROOM).every((b) => b === 0xaa), `headroom of slot ${i} untouched`);
  });
  t.equal(stats[0], 0, 'no drops');
  t.equal(net.recvBatch(rx!, buf, SLOT, HEADROOM, 8, arr, stats), 0, 'an empty queue returns 0, not an error');

  for (let i = 0; i < 3; i++) net.sendOne(tx!, payloads[1]!, 0, 100, LOCALHOST, rxPort);
  t.equal(net.recvBatch(rx!, buf, SLOT, HEADROOM, 2, arr, stats), 2, 'maxCount bounds the batch');
  t.equal(net.recvBatch(rx!, buf, SLOT, HEADROOM, 2, arr, stats), 1);
  t.equal(arr.dstAddr[0], LOCALHOST);
  t.end();
});

t.test('a datagram larger than its slot is flagged truncated with the stored length', (t) => {
  const [rx, tx] = track(t, net.openUdp(LOCALHOST, 0, BUF_1MIB), net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const big = randomBytes(3000);
  net.sendOne(tx!, big, 0, big.length, LOCALHOST, net.localPort(rx!));
  net.sendOne(tx!, big, 0, 10, LOCALHOST, net.localPort(rx!));
  const slot = 1024;
  const buf = Buffer.alloc(slot * 2);
  const arr = recvArrays(2);
  t.equal(net.recvBatch(rx!, buf, slot, HEADROOM, 2, arr, new Float64Array(1)), 2);
  t.equal(arr.truncated[0], 1);
  t.equal(arr.lens[0], slot - HEADROOM);
  t.ok(buf.subarray(HEADROOM, slot).equals(big.subarray(0, slot - HEADROOM)));
  t.equal(arr.truncated[1], 0);
  t.equal(arr.lens[1], 10);
  t.end();
});

t.test('kernel receive-queue drops (SO_RXQ_OVFL) are added to stats[0]', (t) => {
  const [rx, tx] = track(t, net.openUdp(LOCALHOST, 0, 4096), net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const port = net.localPort(rx!);
  const payload = Buffer.alloc(1000);
  const SENT = 300;
  for (let i = 0; i < SENT; i++) net.sendOne(tx!, payload, 0, payload.length, LOCALHOST, port);
  const stats = new Float64Array(1);
  const buf = Buffer.alloc(SLOT * 64);
  const arr = recvArrays(64);
  let received = 0;
  const drainAll = (): void => {
    for (let n; (n = net.recvBatch(rx!, buf, SLOT, 0, 64, arr, stats)) > 0; ) received += n;
  };
  drainAll();
  // The counter rides on the next queued datagram, so one more send reports the drops after the last one kept.
  net.sendOne(tx!, payload, 0, payload.length, LOCALHOST, port);
  drainAll();
  t.ok((stats[0] ?? 0) > 0, `drops counted (${stats[0]})`);
  t.equal(received + (stats[0] ?? 0), SENT + 1, 'every datagram is either received or counted as dropped');
  t.end();
});

t.test('sendUdpBatch sends each payload to its own destination', (t) => {
  const [a, b, tx] = track(t, net.openUdp(LOCALHOST, 0, BUF_1MIB), net.openUdp(LOOP_2, 0, BUF_1MIB), net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const buf = Buffer.alloc(4096);
  randomBytes(4096).copy(buf);
  const arr = sendArrays(3);
  arr.offs.set([0, 1000, 2001]);
  arr.lens.set([10, 999, 7]);
  arr.dstAddr.set([LOCALHOST, LOOP_2, LOCALHOST]);
  arr.dstPort.set([net.localPort(a!), net.localPort(b!), net.localPort(a!)]);
  t.equal(net.sendUdpBatch(tx!, buf, arr, 3), 3);
  const gotA = drain(a!);
  const gotB = drain(b!);
  t.same(gotA.map((p) => p.toString('hex')), [buf.subarray(0, 10).toString('hex'), buf.subarray(2001, 2008).toString('hex')]);
  t.same(gotB.map((p) => p.toString('hex')), [buf.subarray(1000, 1999).toString('hex')]);
  t.end();
});

t.test('sendRawBatch sends from GWLB\'s source port with valid IPv4 and UDP checksums', (t) => {
  const [rx, raw, cap] = track(t, net.openUdp(LOOP_2, 0, 4 * BUF_1MIB), net.openRawSend(BUF_1MIB), net.openRawUdpRecv(8 * BUF_1MIB));
  const rxPort = net.localPort(rx!);
  const sizes = [333, MAX_DATAGRAM, 64, 1];
  const payloads = sizes.map((n) => randomBytes(n));
  const buf = Buffer.alloc(SLOT * sizes.length);
  const arr = sendArrays(sizes.length);
  payloads.forEach((p, i) => {
    const off = i * SLOT + HEADROOM;
    p.copy(buf, off);
    arr.offs[i] = off;
    arr.lens[i] = p.length;
    arr.srcAddr[i] = LOCALHOST;
    arr.srcPort[i] = RAW_SRC_PORT;
    arr.dstAddr[i] = LOOP_2;
    arr.dstPort[i] = rxPort;
  });
  t.equal(net.sendRawBatch(raw!, buf, arr, sizes.length), sizes.length);

  // A plain UDP socket only queues datagrams whose checksum the kernel verified.
  const rbuf = Buffer.alloc(SLOT * 8);
  const rarr = recvArrays(8);
  t.equal(net.recvBatch(rx!, rbuf, SLOT, 0, 8, rarr, new Float64Array(1)), sizes.length);
  payloads.forEach((p, i) => {
    t.equal(rarr.srcPort[i], RAW_SRC_PORT, 'source port is the one we wrote, not the socket\'s');
    t.equal(rarr.srcAddr[i], LOCALHOST);
    t.equal(rarr.dstAddr[i], LOOP_2);
    t.ok(rbuf.subarray(i * SLOT, i * SLOT + (rarr.lens[i] ?? 0)).equals(p), `payload ${i} (${p.length} bytes) intact`);
  });

  // The same packets seen by a raw IPPROTO_UDP socket, headers included, checked independently.
  const pkt = Buffer.alloc(65536);
  const info = new Float64Array(3);
  const seen: Buffer[] = [];
  for (let n; (n = net.recvOne(cap!, pkt, info)) > 0; ) {
    if (pkt.readUInt16BE(20) === RAW_SRC_PORT && pkt.readUInt16BE(22) === rxPort) seen.push(Buffer.from(pkt.subarray(0, n)));
  }
  t.equal(seen.length, sizes.length, 'every packet captured');
  seen.forEach((p, i) => {
    const len = sizes[i]!;
    t.equal(p.length, 28 + len);
    t.equal(p[0], 0x45, 'IPv4, IHL 5');
    t.equal(p.readUInt16BE(2), 28 + len, 'total length');
    t.equal(p.readUInt16BE(6), 0, 'no flags, no fragment offset');
    t.equal(p[8], 64, 'TTL');
    t.equal(p[9], 17, 'protocol UDP');
    t.equal(p.readUInt32BE(12), LOCALHOST);
    t.equal(p.readUInt32BE(16), LOOP_2);
    t.equal(onesSum(p.subarray(0, 20)), 0xffff, 'IPv4 header checksum verifies');
    t.equal(p.readUInt16BE(24), 8 + len, 'UDP length');
    t.equal(p.readUInt16BE(26), udpChecksum(LOCALHOST, LOOP_2, p.subarray(20)), `UDP checksum of a ${len}-byte payload`);
    t.ok(p.subarray(28).equals(payloads[i]!));
  });
  t.end();
});

t.test('batches larger than one sendmmsg call (1024) are sent whole, raw and plain', (t) => {
  const [rx, raw, tx] = track(t, net.openUdp(LOOP_2, 0, 8 * BUF_1MIB), net.openRawSend(BUF_1MIB), net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const rxPort = net.localPort(rx!);
  const COUNT = 1500;
  const slot = 64;
  const buf = Buffer.alloc(slot * COUNT);
  const arr = sendArrays(COUNT);
  for (let i = 0; i < COUNT; i++) {
    buf.writeUInt32BE(i, i * slot + HEADROOM);
    arr.offs[i] = i * slot + HEADROOM;
    arr.lens[i] = 4;
    arr.srcAddr[i] = LOCALHOST;
    arr.srcPort[i] = RAW_SRC_PORT;
    arr.dstAddr[i] = LOOP_2;
    arr.dstPort[i] = rxPort;
  }
  for (const [name, send] of [['sendRawBatch', () => net.sendRawBatch(raw!, buf, arr, COUNT)], ['sendUdpBatch', () => net.sendUdpBatch(tx!, buf, arr, COUNT)]] as const) {
    t.equal(send(), COUNT, `${name} reports every datagram sent`);
    const got = drain(rx!).map((p) => p.readUInt32BE(0));
    t.equal(got.length, COUNT, `${name}: all arrive`);
    t.same(got, Array.from({ length: COUNT }, (_, i) => i), `${name}: in order`);
  }
  t.end();
});

t.test('a datagram the kernel refuses is skipped and counted; the rest of the batch is sent, raw and plain', (t) => {
  // 255.255.255.255 without SO_BROADCAST: the kernel refuses that one datagram (EACCES) and sends nothing.
  const BROADCAST = ip(255, 255, 255, 255);
  const EACCES = 13;
  const [rx, raw, tx] = track(t, net.openUdp(LOOP_2, 0, 4 * BUF_1MIB), net.openRawSend(BUF_1MIB), net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const rxPort = net.localPort(rx!);
  const COUNT = 6;
  const refused = new Set([1, 4]);
  const slot = 64;
  const buf = Buffer.alloc(slot * COUNT);
  const arr = sendArrays(COUNT);
  for (let i = 0; i < COUNT; i++) {
    buf.writeUInt32BE(i, i * slot + HEADROOM);
    arr.offs[i] = i * slot + HEADROOM;
    arr.lens[i] = 4 + i;
    arr.srcAddr[i] = LOCALHOST;
    arr.srcPort[i] = RAW_SRC_PORT;
    arr.dstAddr[i] = refused.has(i) ? BROADCAST : LOOP_2;
    arr.dstPort[i] = rxPort;
  }
  const okIdx = Array.from({ length: COUNT }, (_, i) => i).filter((i) => !refused.has(i));
  for (const [name, send] of [['sendRawBatch', (st: Float64Array) => net.sendRawBatch(raw!, buf, arr, COUNT, st)], ['sendUdpBatch', (st: Float64Array) => net.sendUdpBatch(tx!, buf, arr, COUNT, st)]] as const) {
    const stats = new Float64Array(SEND_STAT_SLOTS);
    t.equal(send(stats), COUNT - refused.size, `${name}: returns the number sent`);
    t.equal(stats[SEND_STAT.FAILED], refused.size, `${name}: the refused ones are counted`);
    t.equal(stats[SEND_STAT.ERRNO], EACCES, `${name}: with their errno`);
    t.equal(stats[SEND_STAT.BYTES], okIdx.reduce((n, i) => n + 4 + i, 0), `${name}: bytes of those sent`);
    t.same(drain(rx!).map((p) => p.readUInt32BE(0)), okIdx, `${name}: every other datagram arrives, in order`);
  }
  t.end();
});

t.test('a UDP checksum that computes to zero is sent as 0xFFFF (RFC 768)', (t) => {
  const [rx, raw, cap] = track(t, net.openUdp(LOOP_2, 0, BUF_1MIB), net.openRawSend(BUF_1MIB), net.openRawUdpRecv(8 * BUF_1MIB));
  const rxPort = net.localPort(rx!);
  const payload = Buffer.from(randomBytes(32));
  payload.writeUInt16BE(0, 30);
  // Pick the last word so that the sum over pseudo-header + header + data is 0xFFFF: its complement is 0.
  const seg = Buffer.alloc(8 + payload.length);
  seg.writeUInt16BE(RAW_SRC_PORT, 0);
  seg.writeUInt16BE(rxPort, 2);
  seg.writeUInt16BE(seg.length, 4);
  payload.copy(seg, 8);
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(LOCALHOST, 0);
  pseudo.writeUInt32BE(LOOP_2, 4);
  pseudo.writeUInt16BE(17, 8);
  pseudo.writeUInt16BE(seg.length, 10);
  payload.writeUInt16BE(~onesSum(seg, onesSum(pseudo)) & 0xffff, 30);

  const buf = Buffer.alloc(HEADROOM + payload.length);
  payload.copy(buf, HEADROOM);
  const arr = sendArrays(1);
  arr.offs[0] = HEADROOM;
  arr.lens[0] = payload.length;
  arr.srcAddr[0] = LOCALHOST;
  arr.srcPort[0] = RAW_SRC_PORT;
  arr.dstAddr[0] = LOOP_2;
  arr.dstPort[0] = rxPort;
  t.equal(net.sendRawBatch(raw!, buf, arr, 1), 1);
  const pkt = Buffer.alloc(65536);
  let checksum = -1;
  for (let n; (n = net.recvOne(cap!, pkt, new Float64Array(3))) > 0; ) {
    if (pkt.readUInt16BE(20) === RAW_SRC_PORT && pkt.readUInt16BE(22) === rxPort) checksum = pkt.readUInt16BE(26);
  }
  t.equal(checksum, 0xffff);
  t.equal(drain(rx!).length, 1, 'and the receiver accepts it');
  t.end();
});

/** Sends pkt from every sender (distinct outer source ports) to the group and returns the sockets it reached. */
function landing(group: number[], senders: number[], pkt: Buffer): Set<number> {
  const port = net.localPort(group[0]!);
  for (const s of senders) net.sendOne(s, pkt, 0, pkt.length, LOCALHOST, port);
  const where = new Set<number>();
  group.forEach((fd, idx) => {
    for (const got of drain(fd)) {
      if (got.equals(pkt)) where.add(idx);
    }
  });
  return where;
}

for (const COUNT of [2, 3]) {
  t.test(`a reuseport group of ${COUNT} steers both directions of a flow to the socket steeringIndex predicts`, (t) => {
    const key = newSteeringKey();
    t.equal(key.length, STEERING_KEY_WORDS);
    const group = track(t, ...net.openUdpGroup(LOCALHOST, 0, COUNT, 4 * BUF_1MIB, key));
    t.equal(group.length, COUNT);
    const port = net.localPort(group[0]!);
    t.equal(net.localPort(group[1]!), port, 'the group shares one port');
    const senders = track(t, ...Array.from({ length: 8 }, () => net.openUdp(LOCALHOST, 0, BUF_1MIB)));

    const used = new Set<number>();
    const cases: Array<[number, Uint8Array, Uint8Array]> = [];
    for (let i = 0; i < 48; i++) cases.push([0x0800, Uint8Array.of(10, i, 7, 1 + i), Uint8Array.of(10, 200, i * 3, 9)]);
    for (let i = 0; i < 16; i++) cases.push([0x86dd, randomBytes(16), randomBytes(16)]);
    for (const [proto, src, dst] of cases) {
      const expected = net.steeringIndex(words(src), words(dst), COUNT, key);
      t.equal(net.steeringIndex(words(dst), words(src), COUNT, key), expected, 'steeringIndex is symmetric');
      const fwd = landing(group, senders, geneve(proto, src, dst));
      const rev = landing(group, senders, geneve(proto, dst, src));
      const label = `${proto === 0x0800 ? 'IPv4' : 'IPv6'} ${Buffer.from(src).toString('hex')} <-> ${Buffer.from(dst).toString('hex')}`;
      t.same([...fwd], [expected], `${label}: forward lands on socket ${expected} from every source port`);
      t.same([...rev], [expected], `${label}: reverse lands on the same socket`);
      used.add(expected);
    }
    t.same([...used].sort(), Array.from({ length: COUNT }, (_, i) => i), 'distinct flows spread over every socket');

    t.same([...landing(group, senders, Buffer.from('0000', 'hex'))], [0], 'a datagram too short for an inner address goes to socket 0');
    const arp = geneve(0x0800, Uint8Array.of(10, 0, 0, 1), Uint8Array.of(10, 0, 0, 2));
    arp.writeUInt16BE(0x0806, 2);
    t.same([...landing(group, senders, arp)], [0], 'an unknown protocol type goes to socket 0');
    t.end();
  });
}

t.test('two starts with different steering keys spread the same flows differently, each as its key predicts', (t) => {
  // Regression: the steering hash was unkeyed, so anyone could compute addresses that all land on one worker.
  const COUNT = 4;
  const keys = [Uint32Array.of(0x01234567, 0x89abcdef), Uint32Array.of(0xdeadbeef, 0x0badf00d)];
  const senders = track(t, ...Array.from({ length: 2 }, () => net.openUdp(LOCALHOST, 0, BUF_1MIB)));
  const flows: Array<[Uint8Array, Uint8Array]> = [];
  for (let i = 0; i < 32; i++) flows.push([Uint8Array.of(10, 0, 0, 1 + i), Uint8Array.of(10, 0, 1, 1 + i)]);
  const placements = keys.map((key) => {
    const group = track(t, ...net.openUdpGroup(LOCALHOST, 0, COUNT, 4 * BUF_1MIB, key));
    return flows.map(([src, dst]) => {
      const fwd = [...landing(group, senders, geneve(0x0800, src, dst))];
      const rev = [...landing(group, senders, geneve(0x0800, dst, src))];
      const expected = net.steeringIndex(words(src), words(dst), COUNT, key);
      if (fwd.length !== 1 || fwd[0] !== expected || rev.length !== 1 || rev[0] !== expected) {
        t.fail(`key ${key[0]!.toString(16)}: ${src.join('.')} <-> ${dst.join('.')} landed ${fwd}/${rev}, predicted ${expected}`);
      }
      return fwd[0];
    });
  });
  const [a, b] = placements as [number[], number[]];
  const moved = a.filter((w, i) => w !== b[i]).length;
  t.comment(`key 1: ${a.join('')}  key 2: ${b.join('')}`);
  // Independent placements agree on a flow with probability 1/4: 32 flows all agreeing would be 2^-64.
  t.ok(moved >= 8, `${moved} of 32 flows land on another socket under the other key`);
  t.ok(new Set(a).size === COUNT && new Set(b).size === COUNT, 'both keys use every socket');
  t.end();
});

t.test('steeringIndex: keyed symmetric hash, known answers (computed independently in Python)', (t) => {
  // Model (test/fixtures/steering-model.py): absorb(x, w) = y ^ y >> 15, y = (x ^ w) * 0x9E3779B1;
  // addr = finish(absorb⁴(k0, a0..a3)), finish(x) = y ^ y >> 16, y = (x ^ k1) * 0x85EBCA6B;
  // h = addr(src) + addr(dst); h ^= h >> 16; h *= 0xC2B2AE35; h ^= h >> 16; index = h % count (all mod 2^32).
  const key = Uint32Array.of(0x01234567, 0x89abcdef);
  const v4 = (a: number, b: number, c: number, d: number): Uint32Array => words(Uint8Array.of(a, b, c, d));
  const cases: Array<[string, Uint32Array, Uint32Array, Record<number, number>]> = [
    // h = 805176607
    ['10.0.0.1 <-> 10.0.0.2', v4(10, 0, 0, 1), v4(10, 0, 0, 2), { 2: 1, 3: 1, 7: 4, 251: 233, 256: 31 }],
    // h = 2469828835
    ['10.1.0.0 <-> 10.0.0.0', v4(10, 1, 0, 0), v4(10, 0, 0, 0), { 2: 1, 3: 1, 7: 5, 251: 130, 256: 227 }],
    // h = 1259744141 (unsigned arithmetic throughout)
    ['255.255.255.255 <-> 0.0.0.0', v4(255, 255, 255, 255), v4(0, 0, 0, 0), { 2: 1, 3: 2, 7: 5, 251: 241, 256: 141 }],
    // h = 2646619864
    ['2001:db8::1 <-> 2001:db8::2', Uint32Array.of(0x20010db8, 0, 0, 1), Uint32Array.of(0x20010db8, 0, 0, 2), { 2: 0, 3: 1, 7: 0, 251: 62, 256: 216 }],
    // h = 100461406: equal endpoints do not cancel (a sum, not an XOR)
    ['192.0.2.1 <-> 192.0.2.1', v4(192, 0, 2, 1), v4(192, 0, 2, 1), { 2: 0, 3: 1, 7: 3, 251: 162, 256: 94 }],
  ];
  for (const [label, src, dst, byCount] of cases) {
    for (const [count, index] of Object.entries(byCount)) {
      t.equal(net.steeringIndex(src, dst, Number(count), key), index, `${label}, ${count} sockets`);
      t.equal(net.steeringIndex(dst, src, Number(count), key), index, `${label} reversed, ${count} sockets`);
    }
  }
  t.end();
});

t.test('poll calls back from the event loop while the fd is readable', async (t) => {
  const [rx, tx] = track(t, net.openUdp(LOCALHOST, 0, BUF_1MIB), net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const buf = Buffer.alloc(2048);
  const info = new Float64Array(3);
  let calls = 0;
  const got = new Promise<string>((resolve) => {
    const handle = net.poll(rx!, () => {
      calls++;
      const n = net.recvOne(rx!, buf, info);
      handle.close();
      handle.close(); // idempotent
      resolve(buf.subarray(0, n).toString());
    });
  });
  net.sendOne(tx!, Buffer.from('ping'), 0, 4, LOCALHOST, net.localPort(rx!));
  t.equal(await got, 'ping');
  t.equal(info[1], net.localPort(tx!));
  net.sendOne(tx!, Buffer.from('late'), 0, 4, LOCALHOST, net.localPort(rx!));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(calls, 1, 'no callback after close');
});

t.test('one poll per fd, and close(fd) stops its poll so a reused fd number polls afresh', async (t) => {
  const [tx] = track(t, net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const first = net.openUdp(LOCALHOST, 0, BUF_1MIB);
  let staleCalls = 0;
  const stale = net.poll(first, () => {
    staleCalls++;
  });
  t.throws(() => net.poll(first, () => {}), { code: 'EEXIST', message: /^poll: / });
  net.close(first);
  const second = net.openUdp(LOCALHOST, 0, BUF_1MIB);
  t.teardown(() => net.close(second));
  t.comment(second === first ? 'fd number reused' : 'fd number not reused');
  const got = new Promise<void>((resolve) => {
    const h = net.poll(second, () => {
      net.recvOne(second, Buffer.alloc(64), new Float64Array(3));
      h.close();
      resolve();
    });
  });
  stale.close(); // already stopped by close(fd): must not touch the new poll
  net.sendOne(tx!, Buffer.from('x'), 0, 1, LOCALHOST, net.localPort(second));
  await got;
  t.equal(staleCalls, 0, 'the closed fd\'s callback never runs');
});

/** Runs a CommonJS snippet in a fresh node with the addon at ADDON. */
function runNode(code: string): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', `const ADDON = ${JSON.stringify(ADDON_PATH)};\n${code}`], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const POLL_THROWS = `
const net = require(ADDON);
const fd = net.openUdp(0x7f000001, 0, 0);
net.poll(fd, () => { net.recvOne(fd, Buffer.alloc(64), new Float64Array(3)); throw new Error('boom from poll'); });
net.sendOne(fd, Buffer.from('x'), 0, 1, 0x7f000001, net.localPort(fd));
`;

t.test('an exception thrown by a poll callback is an uncaught exception, not a crash', (t) => {
  const handled = runNode(`process.on('uncaughtException', (e) => { console.log('caught: ' + e.message); process.exit(0); });\n${POLL_THROWS}`);
  t.equal(handled.signal, null);
  t.equal(handled.status, 0);
  t.match(handled.stdout, 'caught: boom from poll');
  const unhandled = runNode(POLL_THROWS);
  t.equal(unhandled.signal, null, 'no abort');
  t.equal(unhandled.status, 1, 'exits like any uncaught exception');
  t.match(unhandled.stderr, 'boom from poll');
  t.end();
});

t.test('the addon loads and polls in worker threads, which may exit with a poll still active', async (t) => {
  const code = `
    const { parentPort } = require('node:worker_threads');
    const net = require(${JSON.stringify(ADDON_PATH)});
    const fd = net.openUdp(0x7f000001, 0, 0);
    const buf = Buffer.alloc(64), info = new Float64Array(3);
    net.poll(fd, () => {
      const n = net.recvOne(fd, buf, info);
      if (n > 0) parentPort.postMessage(buf.subarray(0, n).toString());
    });
    parentPort.postMessage(net.localPort(fd));
  `;
  const [tx] = track(t, net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const runOne = async (word: string, stop: 'terminate' | 'exit'): Promise<number> => {
    const w = new Worker(stop === 'exit' ? code + `\nparentPort.once('message', () => process.exit(0));` : code, { eval: true });
    const exited = new Promise<number>((resolve) => w.once('exit', resolve));
    const port = await new Promise<number>((resolve) => w.once('message', resolve));
    const echoed = new Promise<string>((resolve) => w.once('message', resolve));
    net.sendOne(tx!, Buffer.from(word), 0, word.length, LOCALHOST, port);
    t.equal(await echoed, word, `worker received ${word}`);
    if (stop === 'terminate') await w.terminate();
    else w.postMessage('exit');
    return exited;
  };
  const codes = await Promise.all([runOne('alpha', 'terminate'), runOne('beta', 'exit'), runOne('gamma', 'exit')]);
  t.same(codes, [1, 0, 0], 'workers end normally (terminate() reports 1)');
});

t.test('errors carry the syscall in the message and the errno name in code', (t) => {
  const [a] = track(t, net.openUdp(LOCALHOST, 0, BUF_1MIB));
  const port = net.localPort(a!);
  t.throws(() => net.openUdp(LOCALHOST, port, BUF_1MIB), { code: 'EADDRINUSE', message: /^bind: / });
  t.throws(() => net.openUdpGroup(LOCALHOST, port, 2, BUF_1MIB, newSteeringKey()), { code: 'EADDRINUSE' }, 'a group cannot join a non-reuseport socket');
  t.throws(() => net.close(1 << 20), { code: 'EBADF', message: /^close: / });
  t.throws(() => net.localPort(1 << 20), { code: 'EBADF', message: /^getsockname: / });
  const fd = a!;
  const buf = Buffer.alloc(SLOT * 4);
  const stats = new Float64Array(1);
  t.throws(() => net.recvBatch(fd, buf, SLOT, 0, 1025, recvArrays(1025), stats), RangeError, 'batch over 1024');
  t.throws(() => net.recvBatch(fd, buf, SLOT, 0, 5, recvArrays(5), stats), RangeError, 'buffer smaller than the slots');
  t.throws(() => net.recvBatch(fd, buf, SLOT, SLOT, 4, recvArrays(4), stats), RangeError, 'headroom fills the slot');
  t.throws(() => net.recvBatch(fd, buf, SLOT, 0, 4, recvArrays(3), stats), RangeError, 'arrays shorter than maxCount');
  t.throws(() => net.recvBatch(fd, buf, SLOT, 0, 4, { ...recvArrays(4), srcPort: new Uint32Array(4) } as unknown as RecvBatchArrays, stats), TypeError);
  t.throws(() => net.recvBatch('3' as unknown as number, buf, SLOT, 0, 4, recvArrays(4), stats), TypeError);
  t.throws(() => net.recvBatch(fd, new Uint8Array(10) as unknown as Buffer, 4, 0, 4, recvArrays(4), stats), RangeError);

  const arr = sendArrays(2);
  arr.offs.set([28, 27]);
  arr.lens.set([1, 1]);
  t.throws(() => net.sendRawBatch(fd, Buffer.alloc(100), arr, 2), RangeError, 'offset leaves no room for headers');
  arr.offs.set([28, 90]);
  arr.lens.set([1, 11]);
  t.throws(() => net.sendRawBatch(fd, Buffer.alloc(100), arr, 2), RangeError, 'payload past the end');
  t.throws(() => net.sendRawBatch(fd, Buffer.alloc(100), arr, 3), RangeError, 'count beyond the arrays');
  t.throws(() => net.sendUdpBatch(fd, Buffer.alloc(100), arr, 2), RangeError);
  t.throws(() => net.sendOne(fd, Buffer.alloc(10), 5, 6, LOCALHOST, port), RangeError);
  t.throws(() => net.sendOne(fd, Buffer.alloc(10), -1, 6, LOCALHOST, port), RangeError);
  t.throws(() => net.sendOne(fd, Buffer.alloc(10), 0, 1.5, LOCALHOST, port), RangeError);
  t.throws(() => net.openUdp(2 ** 32, 0, 0), RangeError);
  t.throws(() => net.openUdp(LOCALHOST, 65536, 0), RangeError);
  t.throws(() => net.openUdpGroup(LOCALHOST, 0, 0, 0, new Uint32Array(2)), RangeError);
  t.throws(() => net.openUdpGroup(LOCALHOST, 0, 2, 0, new Uint32Array(1)), RangeError, 'a steering key of one word');
  t.throws(() => net.openUdpGroup(LOCALHOST, 0, 2, 0, new Int32Array(2) as unknown as Uint32Array), TypeError, 'a steering key of the wrong type');
  t.throws(() => net.steeringIndex(new Uint32Array(3), new Uint32Array(4), 2, new Uint32Array(2)), RangeError);
  t.throws(() => (net.steeringIndex as unknown as (a: Uint32Array, b: Uint32Array, c: number) => number)(new Uint32Array(4), new Uint32Array(4), 2), TypeError, 'the key is required');
  t.throws(() => net.poll(fd, 'nope' as unknown as () => void), TypeError);
  t.throws(() => net.openTun('a-name-that-is-too-long'), RangeError);
  t.end();
});

t.test('openTun creates a non-blocking TUN device that reads 0 when idle', (t) => {
  const fd = net.openTun(`gwlbt${process.pid % 100000}`);
  t.teardown(() => net.close(fd));
  t.equal(net.readFd(fd, Buffer.alloc(2048), 0, 2048), 0);
  t.throws(() => net.readFd(fd, Buffer.alloc(10), 8, 3), RangeError);
  t.end();
});
