/**
 * Fragments through the packet engine with the real firewall stage: later fragments follow the verdict of their
 * datagram's first fragment (they used to be judged alone, with port conditions ignored, and passed a
 * port-allow rule whatever port their datagram was for), wait for it when they come first, and go out after it.
 */
import t from 'tap';
import { Buffer } from 'node:buffer';
import { PacketEngine, SLOT_BYTES, HEADROOM_BYTES, createRecvArrays } from '../../src/dataplane/engine.js';
import { createCounters, COUNTER, dropReasons, namedCounters } from '../../src/dataplane/counters.js';
import { FlowTable } from '../../src/flow/table.js';
import { resolveSettings, type Settings } from '../../src/config/settings.js';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Udp, buildIPv4Tcp, buildIPv6Udp } from '../../src/packet/build.js';
import { FirewallStage } from '../../src/firewall/stage.js';
import { ACTION, STAGE_RESULT, type PacketContext, type Stage } from '../../src/pipeline/stage.js';
import { policy } from '../fixtures/firewall.js';
import { fragmentV4, fragmentV6, type Cut } from '../fixtures/fragments.js';

const GWLB = 0x7f000002;
const LOCAL = 0x7f000001;
const POLICY = `version: 1
default_action: drop
rules:
  - name: dns
    action: pass
    proto: udp
    dst_ports: 53
  - name: web
    action: pass
    proto: tcp
    dst_ports: 80
`;

function engine(stages: Stage[], over: Partial<Record<keyof Settings, unknown>> = {}): PacketEngine {
  const settings = { ...resolveSettings({}, {}), batchSize: 16, ...over } as Settings;
  const flows = new FlowTable({ maxFlows: 1024, tcpIdleMs: 350_000, otherIdleMs: 120_000 });
  return new PacketEngine({ settings, counters: createCounters(), flows, stages, probeNonce: Buffer.from('0123456789abcdef') });
}

const firewall = (): FirewallStage => new FirewallStage(policy(POLICY));
const wrap = (inner: Buffer, cookie = 7): Buffer =>
  encodeGeneve({ flowCookie: cookie, endpointIdHi: 1, endpointIdLo: 2, protocolType: inner[0]! >>> 4 === 6 ? 0x86dd : 0x0800 }, inner);

/** One batch through the engine: what went out (tx list first, as the worker flushes it). */
function run(e: PacketEngine, datagrams: Buffer[], nowMs = 1000): Buffer[] {
  const buf = Buffer.alloc(datagrams.length * SLOT_BYTES);
  const meta = createRecvArrays(datagrams.length);
  datagrams.forEach((d, i) => {
    d.copy(buf, i * SLOT_BYTES + HEADROOM_BYTES);
    meta.lens[i] = d.length;
    meta.srcAddr[i] = GWLB;
    meta.srcPort[i] = 40000;
    meta.dstAddr[i] = LOCAL;
  });
  e.txSend.count = 0;
  e.processBatch(buf, SLOT_BYTES, datagrams.length, meta, nowMs);
  const tx = Array.from({ length: e.txSend.count }, (_, i) => Buffer.from(e.txBuf.subarray(e.txSend.offs[i]!, e.txSend.offs[i]! + e.txSend.lens[i]!)));
  const rx = Array.from({ length: e.rxSend.count }, (_, i) => Buffer.from(buf.subarray(e.rxSend.offs[i]!, e.rxSend.offs[i]! + e.rxSend.lens[i]!)));
  return [...tx, ...rx];
}

const payload = Buffer.alloc(64, 0x61);
const cuts = (length: number): Cut[] => [{ start: 0, stop: 24 }, { start: 24, stop: 48 }, { start: 48, stop: length }];
function udpFragments(dstPort: number, id: number): Buffer[] {
  const whole = buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 5000, dstPort, payload });
  return fragmentV4(whole, '10.0.0.1', '10.0.0.2', id, cuts(whole.length - 20)).map((f) => wrap(f));
}

t.test('later fragments of a datagram to a forbidden port are dropped with their first fragment, in either order', async (t) => {
  for (const order of [[0, 1, 2], [2, 1, 0], [1, 2, 0]]) {
    const e = engine([firewall()]);
    const frags = udpFragments(9999, 0x1111);
    const out = order.flatMap((i) => run(e, [frags[i]!]));
    t.same(out, [], `order ${order.join('')}: nothing left the appliance`);
    t.equal(e.counters[COUNTER.PASSED], 0);
  }
});

t.test('an allowed datagram goes out whole in either order, its first fragment ahead of those that waited', async (t) => {
  for (const order of [[0, 1, 2], [2, 1, 0], [1, 2, 0]]) {
    const e = engine([firewall()]);
    const frags = udpFragments(53, 0x2222);
    const out = order.flatMap((i) => run(e, [frags[i]!]));
    t.equal(out.length, 3, `order ${order.join('')}: three fragments out`);
    t.same(new Set(out.map((b) => b.toString('hex'))), new Set(frags.map((b) => b.toString('hex'))), 'byte-identical');
    const firstAt = out.findIndex((b) => b.equals(frags[0]!));
    const waited = order.slice(0, order.indexOf(0)).length;
    t.equal(firstAt, waited === 0 ? 0 : out.length - 1 - waited, 'the first fragment precedes the ones that waited for it');
    const named = namedCounters(e.counters);
    t.equal(named['fragments'], 3);
    t.equal(named['fragment_held'], waited, 'fragments that came before the first one waited');
    t.equal(named['fragment_released'], waited);
    t.equal(named['fragment_datagrams_now'], 0, 'the completed datagram left the tracker');
  }
});

t.test('a later fragment does not create a flow of its own', async (t) => {
  const e = engine([firewall()]);
  const frags = udpFragments(53, 0x3333);
  run(e, frags);
  t.equal(e.flows.size, 1, 'only the first fragment\'s 5-tuple flow');
});

t.test('a tiny TCP first fragment drops the datagram even with --on-malformed pass', async (t) => {
  const whole = buildIPv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 5000, dstPort: 80, flags: 0x02, payload });
  const frags = fragmentV4(whole, '10.0.0.1', '10.0.0.2', 0x4444, [{ start: 0, stop: 8, more: true }, { start: 8, stop: whole.length - 20 }]).map((f) => wrap(f));
  const e = engine([firewall()], { onMalformed: 'pass' });
  t.same(run(e, frags), [], 'neither fragment left');
  t.equal(e.counters[COUNTER.MALFORMED_PASSED], 0);
  const drops = dropReasons(e.counters);
  t.equal(drops['fragment_tiny_dropped'], 1);
  t.equal(drops['fragment_overlap_dropped'], 0, 'the offset-8 fragment found its datagram dropped already');
  t.equal(drops['fragment_dropped_following'], 1);
});

t.test('IPv6: fragments of a forbidden datagram are dropped, of an allowed one passed', async (t) => {
  for (const [port, expected] of [[9999, 0], [53, 3]] as const) {
    const whole = buildIPv6Udp({ src: 'fd00::1', dst: 'fd00::2', srcPort: 5000, dstPort: port, payload });
    const frags = fragmentV6(whole, 'fd00::1', 'fd00::2', 0xabcdef01, cuts(whole.length - 40)).map((f) => wrap(f));
    const e = engine([firewall()]);
    const out = [frags[2]!, frags[0]!, frags[1]!].flatMap((f) => run(e, [f]));
    t.equal(out.length, expected, `to ${port}`);
  }
});

t.test('fragments waiting for a first fragment that never comes are dropped by the timer', async (t) => {
  const e = engine([firewall()], { fragmentTimeoutMs: 200 });
  const frags = udpFragments(53, 0x5555);
  t.same(run(e, [frags[1]!, frags[2]!], 1000), []);
  e.tick(1100);
  t.equal(namedCounters(e.counters)['fragment_held_bytes_now'], frags[1]!.length + frags[2]!.length, 'held until the timeout');
  e.tick(1200);
  t.equal(dropReasons(e.counters)['fragment_timeout_dropped'], 2);
  t.equal(namedCounters(e.counters)['fragment_held_bytes_now'], 0);
  t.same(run(e, [frags[0]!], 1300), [frags[0]], 'the first fragment alone: the host cannot complete the datagram');
});

/** Holds the first packet of each flow, passes it with the next one. */
class HoldFirst implements Stage {
  readonly name = 'hold-first';
  readonly holdBudgetMs = 1000;
  seen = 0;
  onPacket(ctx: PacketContext) {
    if (this.seen++ === 0) return STAGE_RESULT.HOLD;
    ctx.action = ACTION.PASS;
    return STAGE_RESULT.VERDICT;
  }
}

t.test('when a stage holds the first fragment, the rest wait for its flow\'s verdict and go out after it', async (t) => {
  const e = engine([new HoldFirst()]);
  const frags = udpFragments(53, 0x6666);
  t.same(run(e, [frags[0]!, frags[1]!, frags[2]!]), [], 'all wait');
  const next = wrap(buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 5000, dstPort: 53, payload: Buffer.from('next') }));
  const out = run(e, [next]);
  t.same(out, [frags[0], frags[1], frags[2], next], 'the held first fragment, then its datagram, then the deciding packet');
});
