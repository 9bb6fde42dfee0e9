import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import {
  buildIPv4,
  buildIPv4Icmp,
  buildIPv4Tcp,
  buildIPv4Udp,
  buildIPv6,
  buildIPv6Icmp,
  buildIPv6Tcp,
  buildIPv6Udp,
  buildTcp,
  buildUdp,
} from '../../src/packet/build.js';
import { decodeInner, PACKET_ANOMALY } from '../../src/packet/decode.js';
import { createInnerPacket, type InnerPacket, TCP_FLAG } from '../../src/packet/types.js';
import { hex, hexdump, loadHex } from '../fixtures/hex.js';
import { haveTool } from '../helpers/tools.js';

/**
 * RFC 1071 checksum written out again here, deliberately not src/packet/checksum.ts, so a bug there cannot hide
 * itself: a correct checksum field makes the covered bytes (plus pseudo-header) sum to 0xffff.
 */
function onesSum(bytes: Uint8Array[]): number {
  let s = 0;
  for (const b of bytes) {
    for (let i = 0; i < b.length; i += 2) s += ((b[i] as number) << 8) + (i + 1 < b.length ? (b[i + 1] as number) : 0);
  }
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}

function l4ChecksumOk(pkt: Buffer, p: InnerPacket): boolean {
  const l4 = pkt.subarray(p.l4Offset, p.l3Offset + p.ipLength);
  if (p.protocol === 1) return onesSum([l4]) === 0xffff;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(l4.length);
  const pseudo =
    p.ipVersion === 4
      ? [pkt.subarray(12, 20), Buffer.of(0, p.protocol), len.subarray(2)]
      : [pkt.subarray(8, 40), len, Buffer.of(0, 0, 0, p.protocol)];
  return onesSum([...pseudo, l4]) === 0xffff;
}

function decode(pkt: Buffer): InnerPacket {
  const p = createInnerPacket();
  decodeInner(pkt, 0, pkt.length, 0, p);
  return p;
}

t.test('buildIPv4Icmp writes the bytes of the hand-annotated echo request fixture', async (t) => {
  const built = buildIPv4Icmp({
    src: '192.168.1.10',
    dst: '8.8.8.8',
    identifier: 0x1c2d,
    sequence: 1,
    payload: Buffer.from('abcdefgh'),
    ip: { df: true },
  });
  t.same(built, loadHex('packet/ipv4-icmp-echo-request.hex'));
});

t.test('buildIPv4Tcp writes the bytes of the hand-annotated SYN fixture, IP and TCP options included', async (t) => {
  const built = buildIPv4Tcp({
    src: '192.0.2.10',
    dst: '198.51.100.20',
    srcPort: 49152,
    dstPort: 443,
    seq: 0x01020304,
    flags: TCP_FLAG.SYN,
    window: 64240,
    options: hex('02 04 05 b4'),
    ip: { id: 0xabcd, df: true, options: hex('94 04 00 00') },
  });
  t.same(built, loadHex('packet/ipv4-options-tcp-syn.hex'));
});

t.test('buildIPv4Udp writes the inner packet of the GENEVE fixtures', async (t) => {
  const built = buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.1.2', srcPort: 12345, dstPort: 53, payload: Buffer.from('ping'), ip: { id: 0x1234, df: true } });
  t.same(built, loadHex('geneve/aws-options-reordered.hex').subarray(40));
});

t.test('buildIPv6Icmp writes the bytes of the hand-annotated echo reply fixture', async (t) => {
  const built = buildIPv6Icmp({
    src: '2001:db8::2',
    dst: '2001:db8::1',
    type: 129,
    identifier: 0xbeef,
    sequence: 7,
    payload: Buffer.from('xyz!'),
    ip: { hopLimit: 63 },
  });
  t.same(built, loadHex('packet/ipv6-icmpv6-echo-reply.hex'));
});

t.test('buildIPv4 writes fragments like the hand-annotated ones', async (t) => {
  const later = buildIPv4({
    src: '10.0.0.1',
    dst: '10.0.0.2',
    protocol: 17,
    id: 0xbeef,
    fragmentOffset: 3,
    payload: Buffer.alloc(16, 0x42),
  });
  t.same(later, loadHex('packet/ipv4-later-fragment.hex'));
});

t.test('builders refuse addresses of the wrong family', async (t) => {
  t.throws(() => buildIPv4Udp({ src: 'fd00::1', dst: '10.0.0.1', srcPort: 1, dstPort: 2 }), RangeError);
  t.throws(() => buildIPv6Udp({ src: '10.0.0.1', dst: 'fd00::1', srcPort: 1, dstPort: 2 }), RangeError);
  t.throws(() => buildIPv6({ src: 'fd00::1', dst: 'nonsense', nextHeader: 59 }), RangeError);
  t.throws(() => buildIPv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, options: new Uint8Array(41) }), RangeError);
});

t.test('buildTcp and buildUdp pick the family from the source address', async (t) => {
  t.equal(decode(buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2 })).ipVersion, 4);
  t.equal(decode(buildTcp({ src: 'fd00::1', dst: 'fd00::2', srcPort: 1, dstPort: 2 })).ipVersion, 6);
  t.equal(decode(buildUdp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2 })).protocol, 17);
  t.equal(decode(buildUdp({ src: 'fd00::1', dst: 'fd00::2', srcPort: 1, dstPort: 2 })).ipVersion, 6);
});

t.test('a UDP checksum that computes to zero is sent as 0xffff (RFC 768, RFC 8200 §8.1)', async (t) => {
  for (const [src, dst] of [
    ['10.0.0.1', '10.0.0.2'],
    ['fd00::1', 'fd00::2'],
  ] as const) {
    // With a two-byte payload equal to the checksum of a zero payload, the sum becomes 0xffff: checksum 0.
    const first = buildUdp({ src, dst, srcPort: 1000, dstPort: 2000, payload: Buffer.alloc(2) });
    const ckOffset = (src.includes(':') ? 40 : 20) + 6;
    const payload = first.subarray(ckOffset, ckOffset + 2);
    const pkt = buildUdp({ src, dst, srcPort: 1000, dstPort: 2000, payload });
    t.equal(pkt.readUInt16BE(ckOffset), 0xffff, `${src}: zero written as all ones`);
    t.ok(l4ChecksumOk(pkt, decode(pkt)), 'and it still verifies');
  }
});

const arbPort = fc.integer({ min: 0, max: 0xffff });
const arbV4 = fc.ipV4();
const arbV6 = fc.ipV6();
const arbPayload = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));

t.test('every builder output decodes to the values given, with checksums that verify', async (t) => {
  const cases = fc.oneof(
    fc.record({ kind: fc.constant('tcp4' as const), src: arbV4, dst: arbV4, sp: arbPort, dp: arbPort, payload: arbPayload, seq: fc.nat(0xffffffff), flags: fc.nat(0xff) }),
    fc.record({ kind: fc.constant('tcp6' as const), src: arbV6, dst: arbV6, sp: arbPort, dp: arbPort, payload: arbPayload, seq: fc.nat(0xffffffff), flags: fc.nat(0xff) }),
    fc.record({ kind: fc.constant('udp4' as const), src: arbV4, dst: arbV4, sp: arbPort, dp: arbPort, payload: arbPayload, seq: fc.constant(0), flags: fc.constant(0) }),
    fc.record({ kind: fc.constant('udp6' as const), src: arbV6, dst: arbV6, sp: arbPort, dp: arbPort, payload: arbPayload, seq: fc.constant(0), flags: fc.constant(0) }),
    fc.record({ kind: fc.constant('icmp4' as const), src: arbV4, dst: arbV4, sp: arbPort, dp: arbPort, payload: arbPayload, seq: fc.constant(0), flags: fc.constant(0) }),
    fc.record({ kind: fc.constant('icmp6' as const), src: arbV6, dst: arbV6, sp: arbPort, dp: arbPort, payload: arbPayload, seq: fc.constant(0), flags: fc.constant(0) }),
  );
  fc.assert(
    fc.property(cases, (c) => {
      const { kind, src, dst, sp, dp, payload, seq, flags } = c;
      const pkt =
        kind === 'tcp4'
          ? buildIPv4Tcp({ src, dst, srcPort: sp, dstPort: dp, payload, seq, flags })
          : kind === 'tcp6'
            ? buildIPv6Tcp({ src, dst, srcPort: sp, dstPort: dp, payload, seq, flags })
            : kind === 'udp4'
              ? buildIPv4Udp({ src, dst, srcPort: sp, dstPort: dp, payload })
              : kind === 'udp6'
                ? buildIPv6Udp({ src, dst, srcPort: sp, dstPort: dp, payload })
                : kind === 'icmp4'
                  ? buildIPv4Icmp({ src, dst, identifier: sp, payload })
                  : buildIPv6Icmp({ src, dst, identifier: sp, payload });
      const p = decode(pkt);
      const icmp = kind === 'icmp4' || kind === 'icmp6';
      const ok =
        p.anomaly === PACKET_ANOMALY.OK &&
        p.srcPort === sp &&
        p.dstPort === (icmp ? sp : dp) &&
        p.payloadLength === payload.length &&
        pkt.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength).equals(payload) &&
        (!kind.startsWith('tcp') || (p.tcpSeq === seq && p.tcpFlags === flags)) &&
        (kind.endsWith('6') || onesSum([pkt.subarray(0, 20)]) === 0xffff) &&
        l4ChecksumOk(pkt, p);
      if (!ok) throw new Error(`${kind} ${pkt.toString('hex')}`);
    }),
    { numRuns: 600 },
  );
  t.pass('all round trips hold');
});


t.test(
  'tshark finds every checksum the builders write good',
  async (t) => {
    if (!haveTool(t, 'tshark', 'tshark', 'the independent checksum check')) return;
    const pkts = [
      buildIPv4Tcp({ src: '10.1.2.3', dst: '10.3.2.1', srcPort: 40000, dstPort: 80, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n'), flags: TCP_FLAG.PSH | TCP_FLAG.ACK }),
      buildIPv6Tcp({ src: 'fd00::10', dst: 'fd00::20', srcPort: 40000, dstPort: 443, flags: TCP_FLAG.SYN, options: hex('02 04 05 b4 01 03 03 07') }),
      buildIPv4Udp({ src: '10.1.2.3', dst: '10.3.2.1', srcPort: 5000, dstPort: 6000, payload: Buffer.from('odd') }),
      buildIPv6Udp({ src: '2001:db8::1', dst: '2001:db8:ffff::2', srcPort: 5000, dstPort: 6000, payload: Buffer.from('hello') }),
      buildIPv4Icmp({ src: '10.1.2.3', dst: '10.3.2.1', identifier: 77, sequence: 3, payload: Buffer.from('xyz') }),
      buildIPv6Icmp({ src: 'fe80::1', dst: 'ff02::1', identifier: 77, sequence: 3, payload: Buffer.from('xyz') }),
    ];
    const dir = mkdtempSync(join(tmpdir(), 'build-tshark-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'in.txt'), pkts.map((b) => hexdump(b)).join(''));
    t.equal(spawnSync('text2pcap', ['-q', '-l', '101', join(dir, 'in.txt'), join(dir, 'in.pcap')]).status, 0, 'text2pcap');
    const fields = ['ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status'];
    const r = spawnSync(
      'tshark',
      ['-r', join(dir, 'in.pcap'), '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])],
      { encoding: 'utf8' },
    );
    t.equal(r.status, 0, 'tshark');
    const lines = r.stdout.trimEnd().split('\n');
    t.equal(lines.length, pkts.length);
    lines.forEach((line, i) => {
      const statuses = line.split('|').filter((s) => s !== '');
      t.ok(statuses.length >= 1, `packet ${i} has checksums tshark checked`);
      t.same(statuses, statuses.map(() => '1'), `packet ${i}: every checksum good (${line})`);
    });
  },
);
