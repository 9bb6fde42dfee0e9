import t from 'tap';
import { Buffer } from 'node:buffer';
import {
  ENCAP_HEADROOM,
  GwlbEmulator,
  RETURN,
  RETURN_REJECT_REASONS,
  type EmulatorSettings,
  type EmulatorTarget,
  type ReturnRejectReason,
} from '../../src/lab/emulator.js';
import { LAB_HEALTH_DEFAULTS } from '../../src/lab/health.js';

// ---- packets, built by hand here (not with project builders) so the tests do not share a bug with the code ----

function csum(buf: Buffer, off: number, len: number, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < len; i += 2) s += buf.readUInt16BE(off + i);
  if (len % 2 === 1) s += (buf[off + len - 1] as number) << 8;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

function ip4(s: string): number[] {
  return s.split('.').map(Number);
}

/** IPv4 packet: 20-byte header (checksum filled) + L4 bytes. */
function ipv4(proto: number, src: string, dst: string, l4: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h[8] = 64;
  h[9] = proto;
  Buffer.from(ip4(src)).copy(h, 12);
  Buffer.from(ip4(dst)).copy(h, 16);
  h.writeUInt16BE(csum(h, 0, 20), 10);
  return Buffer.concat([h, l4]);
}

function udp(sp: number, dp: number, payload = Buffer.from('hello')): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeUInt16BE(sp, 0);
  b.writeUInt16BE(dp, 2);
  b.writeUInt16BE(b.length, 4);
  payload.copy(b, 8);
  return b;
}

function tcp(sp: number, dp: number, flags = 0x02): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16BE(sp, 0);
  b.writeUInt16BE(dp, 2);
  b.writeUInt32BE(1000, 4);
  b[12] = 5 << 4;
  b[13] = flags;
  b.writeUInt16BE(65535, 14);
  return b;
}

function icmpEcho(id: number, seq: number, type = 8): Buffer {
  const b = Buffer.alloc(16);
  b[0] = type;
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(seq, 6);
  return b;
}

/** IPv6 packet with a UDP payload. */
function ipv6Udp(srcLast: number, dstLast: number, sp: number, dp: number): Buffer {
  const u = udp(sp, dp);
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(u.length, 4);
  h[6] = 17;
  h[7] = 64;
  h.writeUInt32BE(0xfd770001, 8);
  h[23] = srcLast;
  h.writeUInt32BE(0xfd770002, 24);
  h[39] = dstLast;
  return Buffer.concat([h, u]);
}

interface Sent {
  target: string;
  portIndex: number;
  datagram: Buffer;
}

const EMU = '127.0.0.2';
const PORTS = [40001, 40002, 40003, 40004];

function setup(settings: Partial<EmulatorSettings> = {}, targets = 2) {
  let now = 1_000_000;
  const sent: Sent[] = [];
  const delivered: Buffer[] = [];
  const emu = new GwlbEmulator(
    { health: LAB_HEALTH_DEFAULTS, ...settings },
    {
      send(target: EmulatorTarget, portIndex: number, buf: Buffer, off: number, len: number) {
        sent.push({ target: target.spec.name, portIndex, datagram: Buffer.from(buf.subarray(off, off + len)) });
        return true;
      },
      deliver(buf: Buffer, off: number, len: number) {
        delivered.push(Buffer.from(buf.subarray(off, off + len)));
        return true;
      },
    },
    PORTS,
    () => now,
  );
  for (let i = 1; i <= targets; i++) emu.addTarget({ name: `a${i}`, addr: `127.0.1.${i}`, port: 6081, healthPort: 8080 });
  const push = (inner: Buffer): Sent | undefined => {
    const buf = Buffer.alloc(ENCAP_HEADROOM + inner.length);
    inner.copy(buf, ENCAP_HEADROOM);
    const before = sent.length;
    emu.onTunPacket(buf, ENCAP_HEADROOM, inner.length);
    return sent.length > before ? sent[sent.length - 1] : undefined;
  };
  return {
    emu,
    sent,
    delivered,
    push,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

/** The datagram an appliance returns per docs/architecture.md §2: IPv4 (src = target, dst = emulator) + UDP (ports kept). */
function returnDatagram(
  s: Sent,
  opts: { from?: string; srcPort?: number; dstPort?: number; to?: string; payload?: Buffer; checksum?: 'valid' | 'zero' | 'bad' } = {},
): Buffer {
  const payload = opts.payload ?? s.datagram;
  const from = opts.from ?? `127.0.1.${s.target.slice(1)}`;
  const total = 28 + payload.length;
  const b = Buffer.alloc(total);
  b[0] = 0x45;
  b.writeUInt16BE(total, 2);
  b[8] = 64;
  b[9] = 17;
  Buffer.from(ip4(from)).copy(b, 12);
  Buffer.from(ip4(opts.to ?? EMU)).copy(b, 16);
  b.writeUInt16BE(csum(b, 0, 20), 10);
  b.writeUInt16BE(opts.srcPort ?? (PORTS[s.portIndex] as number), 20);
  b.writeUInt16BE(opts.dstPort ?? 6081, 22);
  b.writeUInt16BE(8 + payload.length, 24);
  payload.copy(b, 28);
  const mode = opts.checksum ?? 'valid';
  if (mode !== 'zero') {
    const src = b.subarray(12, 20);
    const pseudo = src.readUInt16BE(0) + src.readUInt16BE(2) + src.readUInt16BE(4) + src.readUInt16BE(6) + 17 + (8 + payload.length);
    let c = csum(b, 20, 8 + payload.length, pseudo);
    if (c === 0) c = 0xffff;
    b.writeUInt16BE(mode === 'bad' ? c ^ 0x0101 : c, 26);
  }
  return b;
}

function reason(code: number): ReturnRejectReason | 'accepted' | 'ignored' {
  if (code === RETURN.ACCEPTED) return 'accepted';
  if (code === RETURN.IGNORED) return 'ignored';
  return RETURN_REJECT_REASONS[code - 1] as ReturnRejectReason;
}

function cookieOf(s: Sent): number {
  return s.datagram.readUInt32BE(36);
}

t.test('encapsulation: the 40-byte GWLB GENEVE header in front of the untouched inner packet', async (t) => {
  const { push } = setup({}, 1);
  const inner = ipv4(17, '10.77.1.2', '10.77.2.2', udp(5000, 53));
  const s = push(inner);
  if (s === undefined) throw new Error('nothing sent');
  const cookie = cookieOf(s).toString(16).padStart(8, '0');
  // RFC 8926 §3.4 fixed header, then AWS options (class 0x0108) as GWLB sends them.
  const expected = [
    '08', // Ver 0, Opt Len 8 words (32 bytes of options)
    '00', // O = 0, C = 0, reserved
    '0800', // Protocol Type: IPv4
    '000000', // VNI 0
    '00', // reserved
    '0108 01 02 1234567890abcdef', // class 0x0108, type 1 (endpoint id), length 2 words: vpce-01234567890abcdef
    '0108 02 02 0000000000000000', // type 2 (attachment id), zero
    `0108 03 01 ${cookie}`, // type 3 (flow cookie), 1 word
  ]
    .join('')
    .replaceAll(' ', '');
  t.equal(s.datagram.subarray(0, 40).toString('hex'), expected);
  t.ok(s.datagram.subarray(40).equals(inner), 'inner packet bytes unchanged');
  t.equal(s.target, 'a1');
  t.not(cookieOf(s), 0, 'cookie is non-zero');
});

t.test('IPv6 inner packets get Protocol Type 0x86DD', async (t) => {
  const { push } = setup({}, 1);
  const s = push(ipv6Udp(2, 2, 1234, 53));
  t.equal(s?.datagram.readUInt16BE(2), 0x86dd);
});

t.test('5-tuple stickiness: both directions share target and cookie; another 5-tuple is another flow', async (t) => {
  const { push, emu } = setup();
  const fwd = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(40000, 80)));
  const rev = push(ipv4(6, '10.77.2.2', '10.77.1.2', tcp(80, 40000, 0x12)));
  t.equal(rev?.target, fwd?.target);
  t.equal(cookieOf(rev as Sent), cookieOf(fwd as Sent));
  t.equal(emu.flowCount, 1);
  const targets = new Set<string>();
  const cookies = new Set<number>();
  for (let p = 0; p < 64; p++) {
    const s = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(41000 + p, 80))) as Sent;
    targets.add(s.target);
    cookies.add(cookieOf(s));
  }
  t.same([...targets].sort(), ['a1', 'a2'], 'flows spread over both targets');
  t.equal(cookies.size, 64, 'one cookie per flow');
  t.equal(emu.flowCount, 65);
});

t.test('non-TCP/UDP traffic is hashed on the 3-tuple under 5-tuple stickiness', async (t) => {
  const { push, emu } = setup();
  const a = push(ipv4(1, '10.77.1.2', '10.77.2.2', icmpEcho(1, 1))) as Sent;
  const b = push(ipv4(1, '10.77.1.2', '10.77.2.2', icmpEcho(2, 1))) as Sent;
  const reply = push(ipv4(1, '10.77.2.2', '10.77.1.2', icmpEcho(2, 1, 0))) as Sent;
  t.equal(cookieOf(a), cookieOf(b), 'different echo ids, same 3-tuple flow');
  t.equal(cookieOf(reply), cookieOf(a));
  t.equal(emu.flowCount, 1);
});

t.test('3-tuple stickiness ignores ports; 2-tuple ignores the protocol too', async (t) => {
  const three = setup({ stickiness: '3-tuple' });
  const x = three.push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(1111, 80))) as Sent;
  const y = three.push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(2222, 443))) as Sent;
  const u = three.push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(3333, 53))) as Sent;
  t.equal(cookieOf(x), cookieOf(y));
  t.not(cookieOf(u), cookieOf(x), 'UDP between the same hosts is another 3-tuple');
  const two = setup({ stickiness: '2-tuple' });
  const p = two.push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(1111, 80))) as Sent;
  const q = two.push(ipv4(17, '10.77.2.2', '10.77.1.2', udp(53, 3333))) as Sent;
  const r = two.push(ipv4(1, '10.77.1.2', '10.77.2.2', icmpEcho(7, 1))) as Sent;
  t.equal(cookieOf(q), cookieOf(p));
  t.equal(cookieOf(r), cookieOf(p));
  t.equal(two.emu.flowCount, 1);
});

t.test('idle timeouts: UDP 120 s, TCP 350 s; a reused 5-tuple after expiry gets a new cookie', async (t) => {
  const { push, advance, emu } = setup();
  const u1 = push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(5000, 53))) as Sent;
  const t1 = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(5000, 80))) as Sent;
  advance(119_000);
  t.equal(cookieOf(push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(5000, 53))) as Sent), cookieOf(u1), 'UDP alive at 119 s');
  advance(120_001);
  const u2 = push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(5000, 53))) as Sent;
  t.not(cookieOf(u2), cookieOf(u1), 'UDP idle > 120 s: new flow, new cookie');
  t.equal(cookieOf(push(ipv4(6, '10.77.2.2', '10.77.1.2', tcp(80, 5000, 0x10))) as Sent), cookieOf(t1), 'TCP alive at 239 s idle');
  advance(350_001);
  const t2 = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(5000, 80))) as Sent;
  t.not(cookieOf(t2), cookieOf(t1), 'TCP idle > 350 s: new cookie');
  t.ok(emu.counters.flowsExpired >= 2);
  // A late return carrying the forgotten cookie is refused.
  t.equal(reason(emu.onReturnDatagram(returnDatagram(t1), 0, returnDatagram(t1).length)), 'unknown-cookie');
});

t.test('configurable timeouts and the periodic sweep bound the table', async (t) => {
  const { push, advance, emu } = setup({ tcpIdleTimeoutMs: 60_000, otherIdleTimeoutMs: 10_000 });
  push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(1, 80)));
  push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(1, 53)));
  advance(10_001);
  t.equal(emu.sweep(), 1, 'UDP flow swept');
  advance(50_000);
  t.equal(emu.sweep(), 1, 'TCP flow swept');
  t.equal(emu.flowCount, 0);
});

t.test('maxFlows: new flows beyond the bound are dropped and counted', async (t) => {
  const { push, emu } = setup({ maxFlows: 2 });
  push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(1, 53)));
  push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(2, 53)));
  t.equal(push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(3, 53))), undefined);
  t.equal(emu.counters.flowTableFullDrops, 1);
  t.ok(push(ipv4(17, '10.77.2.2', '10.77.1.2', udp(53, 1))), 'existing flows still pass');
});

t.test('health: new flows avoid unhealthy targets, existing flows stay (no_rebalance)', async (t) => {
  const { push, emu } = setup();
  // Find a flow on a1 and one on a2.
  const onTarget: Record<string, number> = {};
  for (let p = 1000; Object.keys(onTarget).length < 2; p++) {
    const s = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(p, 80))) as Sent;
    onTarget[s.target] ??= p;
  }
  const a1 = emu.target('a1') as EmulatorTarget;
  a1.health.record(false, 1);
  a1.health.record(false, 2);
  t.equal(a1.health.state, 'unhealthy');
  const stay = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(onTarget.a1 as number, 80))) as Sent;
  t.equal(stay.target, 'a1', 'existing flow keeps its unhealthy target');
  for (let p = 20000; p < 20064; p++) {
    t.equal((push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(p, 80))) as Sent).target, 'a2');
  }
});

t.test('health: rebalance moves existing flows off an unhealthy target', async (t) => {
  const { push, emu } = setup({ onUnhealthy: 'rebalance' });
  let p = 1000;
  let first: Sent;
  do first = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(++p, 80))) as Sent;
  while (first.target !== 'a1');
  const a1 = emu.target('a1') as EmulatorTarget;
  a1.health.record(false, 1);
  a1.health.record(false, 2);
  const moved = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(p, 80))) as Sent;
  t.equal(moved.target, 'a2');
  t.equal(cookieOf(moved), cookieOf(first), 'same flow, same cookie');
  t.equal(emu.counters.flowsRebalanced, 1);
});

t.test('all targets unhealthy: GWLB fails open to all of them; the drop option drops', async (t) => {
  for (const mode of ['fail-open', 'drop'] as const) {
    const { push, emu } = setup({ allUnhealthy: mode });
    for (const tg of emu.targets) {
      tg.health.record(false, 1);
      tg.health.record(false, 2);
    }
    const seen = new Set<string>();
    for (let p = 0; p < 32; p++) {
      const s = push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(3000 + p, 53)));
      if (s !== undefined) seen.add(s.target);
    }
    if (mode === 'fail-open') {
      t.same([...seen].sort(), ['a1', 'a2'], 'fail open: spread over all targets');
      t.equal(emu.counters.failOpenFlows, 32);
    } else {
      t.equal(seen.size, 0);
      t.equal(emu.counters.noTargetDrops, 32);
    }
  }
});

t.test('no target registered: packets are dropped and counted', async (t) => {
  const { push, emu } = setup({}, 0);
  t.equal(push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(1, 2))), undefined);
  t.equal(emu.counters.noTargetDrops, 1);
});

t.test('source ports: per-flow uses one port both ways; per-direction uses two', async (t) => {
  const perFlow = setup({}, 1);
  const a = perFlow.push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(1, 80))) as Sent;
  const b = perFlow.push(ipv4(6, '10.77.2.2', '10.77.1.2', tcp(80, 1))) as Sent;
  t.equal(a.portIndex, b.portIndex);
  const perDir = setup({ sourcePortMode: 'per-direction' }, 1);
  const c = perDir.push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(1, 80))) as Sent;
  const d = perDir.push(ipv4(6, '10.77.2.2', '10.77.1.2', tcp(80, 1))) as Sent;
  t.not(c.portIndex, d.portIndex);
  t.equal(reason(perDir.emu.onReturnDatagram(returnDatagram(d), 0, returnDatagram(d).length)), 'accepted');
  const swapped = returnDatagram(d, { srcPort: PORTS[c.portIndex] as number });
  t.equal(reason(perDir.emu.onReturnDatagram(swapped, 0, swapped.length)), 'wrong-source-port');
});

t.test("the gateway's own link-local/multicast chatter on the TUN is not GWLB traffic", async (t) => {
  const { push, emu } = setup({}, 1);
  const mld = ipv6Udp(2, 2, 1, 2);
  mld.writeUInt32BE(0xfe800000, 8); // fe80:: source
  t.equal(push(mld), undefined);
  t.equal(emu.counters.linkLocalIgnored, 1);
  t.equal(emu.flowCount, 0);
});

t.test('return checks', async (t) => {
  const { push, emu, delivered } = setup();
  const inner = ipv4(17, '10.77.1.2', '10.77.2.2', udp(5555, 53, Buffer.from('query')));
  const s = push(inner) as Sent;
  const other = s.target === 'a1' ? '127.0.1.2' : '127.0.1.1';
  const check = (d: Buffer): string => reason(emu.onReturnDatagram(d, 0, d.length));

  t.equal(check(returnDatagram(s)), 'accepted', 'a faithful return is accepted');
  t.equal(delivered.length, 1);
  t.ok(delivered[0]?.equals(inner), 'inner packet delivered byte for byte');
  t.equal(check(returnDatagram(s, { checksum: 'zero' })), 'accepted', 'zero UDP checksum = none (RFC 768)');
  const reply = push(ipv4(17, '10.77.2.2', '10.77.1.2', udp(53, 5555, Buffer.from('answer')))) as Sent;
  t.equal(check(returnDatagram(reply)), 'accepted', 'the reverse direction is accepted');

  const mutate = (f: (b: Buffer) => void): Buffer => {
    const p = Buffer.from(s.datagram);
    f(p);
    return returnDatagram(s, { payload: p });
  };
  const cases: [string, Buffer, string][] = [
    ['bad UDP checksum', returnDatagram(s, { checksum: 'bad' }), 'bad-udp-checksum'],
    ['source port not kept', returnDatagram(s, { srcPort: 6081 }), 'wrong-source-port'],
    ['from the other target (IPs not swapped)', returnDatagram(s, { from: other }), 'wrong-target'],
    ['from an unknown address', returnDatagram(s, { from: '127.0.0.9' }), 'unknown-source'],
    ['cookie changed', mutate((b) => b.writeUInt32BE((b.readUInt32BE(36) ^ 1) >>> 0, 36)), 'unknown-cookie'],
    ['endpoint id changed', mutate((b) => (b[12] = 0xff)), 'header-mismatch'],
    ['attachment id changed', mutate((b) => (b[27] = 1)), 'header-mismatch'],
    ['reserved bits changed', mutate((b) => (b[1] = 0x01)), 'header-mismatch'],
    [
      'options reordered (cookie first)',
      mutate((b) => {
        const opts = Buffer.from(b.subarray(8, 40));
        opts.subarray(24, 32).copy(b, 8);
        opts.subarray(0, 24).copy(b, 16);
      }),
      'header-mismatch',
    ],
    [
      'cookie option dropped',
      (() => {
        const p = Buffer.concat([s.datagram.subarray(0, 32), s.datagram.subarray(40)]);
        p[0] = 0x06;
        return returnDatagram(s, { payload: p });
      })(),
      'missing-cookie',
    ],
    ['version 1', mutate((b) => (b[0] = 0x48)), 'bad-geneve'],
    [
      'inner packet of another flow',
      returnDatagram(s, { payload: Buffer.concat([s.datagram.subarray(0, 40), ipv4(17, '10.77.1.2', '10.77.2.2', udp(5556, 53))]) }),
      'inner-mismatch',
    ],
    [
      'larger than 8568 bytes',
      returnDatagram(s, { payload: Buffer.concat([s.datagram.subarray(0, 40), ipv4(17, '10.77.1.2', '10.77.2.2', udp(5555, 53, Buffer.alloc(8600)))]) }),
      'too-large',
    ],
    ['truncated IPv4 header', returnDatagram(s).subarray(0, 12), 'malformed-outer'],
  ];
  for (const [name, d, want] of cases) t.equal(check(d), want, name);
  t.equal(check(returnDatagram(s, { dstPort: 6082 })), 'ignored', 'not to our GENEVE port: not a return');
  t.equal(check(returnDatagram(s, { to: '127.0.1.1' })), 'ignored', 'our own datagram to an appliance: not a return');
  t.equal(delivered.length, 3, 'rejected returns are not delivered');
  t.equal(emu.counters.returnsAccepted, 3);
  for (const [, , want] of cases) t.ok(emu.counters.returnsRejected[want as ReturnRejectReason] >= 1, `counted: ${want}`);
  t.equal(emu.target(s.target)?.returnsAccepted, reply.target === s.target ? 3 : 2);
});

t.test('an ICMP error the appliance originates for a flow rides the flow header and is accepted', async (t) => {
  const { push, emu, delivered } = setup({}, 1);
  const s = push(ipv4(6, '10.77.1.2', '10.77.2.2', tcp(4444, 80))) as Sent;
  const icmp = Buffer.alloc(8 + 28);
  icmp[0] = 3; // destination unreachable
  icmp[1] = 13; // administratively prohibited
  const err = ipv4(1, '10.77.2.2', '10.77.1.2', icmp);
  const d = returnDatagram(s, { payload: Buffer.concat([s.datagram.subarray(0, 40), err]) });
  t.equal(reason(emu.onReturnDatagram(d, 0, d.length)), 'accepted');
  t.ok(delivered[0]?.equals(err));
});

t.test('removing a target forgets its flows', async (t) => {
  const { push, emu } = setup({}, 1);
  const s = push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(1, 2))) as Sent;
  t.ok(emu.removeTarget('a1'));
  t.equal(emu.flowCount, 0);
  t.notOk(emu.removeTarget('a1'));
  t.equal(reason(emu.onReturnDatagram(returnDatagram(s), 0, returnDatagram(s).length)), 'unknown-source');
});

t.test('bad settings are refused', async (t) => {
  t.throws(() => new GwlbEmulator({ endpoints: [{ id: 'vpce-xyz', cidrs: [] }] }, { send: () => true, deliver: () => true }, [1]));
  t.throws(() => new GwlbEmulator({}, { send: () => true, deliver: () => true }, []));
});

t.test('endpoint ids by inner prefix', async (t) => {
  const { push } = setup({
    endpoints: [
      { id: 'vpce-0aaaaaaaaaaaaaaaa', cidrs: ['10.77.9.0/24'] },
      { id: 'vpce-0bbbbbbbbbbbbbbbb', cidrs: ['10.77.1.0/24', 'fd77:1::/64'] },
    ],
  });
  const v4 = push(ipv4(17, '10.77.2.2', '10.77.1.2', udp(1, 2))) as Sent;
  t.equal(v4.datagram.subarray(12, 20).toString('hex'), 'bbbbbbbbbbbbbbbb');
  const v6 = push(ipv6Udp(2, 2, 1, 2)) as Sent;
  t.equal(v6.datagram.subarray(12, 20).toString('hex'), 'bbbbbbbbbbbbbbbb');
  const none = push(ipv4(17, '10.0.0.1', '10.0.0.2', udp(1, 2))) as Sent;
  t.equal(none.datagram.subarray(12, 20).toString('hex'), 'aaaaaaaaaaaaaaaa', 'default = first endpoint');
});

t.test('extra (unknown, non-critical) options ride in every header and must come back verbatim', async (t) => {
  const { push, emu } = setup({ extraOptionsHex: 'ffff0101deadbeef' }, 1);
  const s = push(ipv4(17, '10.77.1.2', '10.77.2.2', udp(9, 9))) as Sent;
  t.equal(s.datagram[0], 0x0a, 'Opt Len 10 words');
  t.equal(s.datagram.subarray(40, 48).toString('hex'), 'ffff0101deadbeef');
  const ok = returnDatagram(s);
  t.equal(reason(emu.onReturnDatagram(ok, 0, ok.length)), 'accepted');
  const stripped = Buffer.concat([s.datagram.subarray(0, 40), s.datagram.subarray(48)]);
  stripped[0] = 0x08;
  const bad = returnDatagram(s, { payload: stripped });
  t.equal(reason(emu.onReturnDatagram(bad, 0, bad.length)), 'header-mismatch', 'dropping the unknown option is refused');
  t.throws(() => setup({ extraOptionsHex: 'abc' }));
  const big = ipv4(17, '10.77.1.2', '10.77.2.2', udp(9, 9, Buffer.alloc(8500 - 28)));
  t.equal(push(big), undefined, 'an 8500-byte inner packet + 48-byte header would exceed 8568: dropped');
  t.equal(emu.counters.innerTooLarge, 1);
});
