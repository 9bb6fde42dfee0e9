/**
 * The packet engine in-process, with real GENEVE bytes and a real flow table: release / hold / drop / reject
 * outcomes of the service chain, the hold budget and memcap exception policies, the malformed-packet policy
 * and the self-test probe. Test stages stand in for firewall/AV/DLP: they implement the real Stage contract.
 */
import t from 'tap';
import { PacketEngine, SLOT_BYTES, HEADROOM_BYTES, createRecvArrays, PROBE_PORT } from '../../src/dataplane/engine.js';
import { createCounters, COUNTER, INNER_ANOMALY_BASE } from '../../src/dataplane/counters.js';
import { FlowTable } from '../../src/flow/table.js';
import { HOLD_PACKET_OVERHEAD_BYTES } from '../../src/pipeline/hold.js';
import { resolveSettings, type Settings } from '../../src/config/settings.js';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Udp, buildIPv4Tcp } from '../../src/packet/build.js';
import { PACKET_ANOMALY } from '../../src/packet/decode.js';
import { ACTION, STAGE_RESULT, type Action, type PacketContext, type Stage } from '../../src/pipeline/stage.js';

const GWLB = 0x7f000002;
const LOCAL = 0x7f000001;
const NONCE = Buffer.from('0123456789abcdef');

function settings(over: Partial<Record<keyof Settings, unknown>> = {}): Settings {
  return { ...resolveSettings({}, {}), batchSize: 16, ...over } as Settings;
}

type EngineOptions = ConstructorParameters<typeof PacketEngine>[0];

function engine(stages: Stage[], over: Partial<Record<keyof Settings, unknown>> = {}, rejectBuilder?: EngineOptions['rejectBuilder'], extra: Partial<EngineOptions> = {}) {
  const s = settings(over);
  const counters = createCounters();
  const flows = new FlowTable({ maxFlows: 1024, tcpIdleMs: 350_000, otherIdleMs: 120_000 });
  return new PacketEngine({ settings: s, counters, flows, stages, probeNonce: NONCE, rejectBuilder, ...extra });
}

/** Lays datagrams into receive slots as recvBatch would. */
function batch(datagrams: Buffer[], srcPort = 40000, srcAddr = GWLB) {
  const buf = Buffer.alloc(datagrams.length * SLOT_BYTES);
  const meta = createRecvArrays(datagrams.length);
  datagrams.forEach((d, i) => {
    d.copy(buf, i * SLOT_BYTES + HEADROOM_BYTES);
    meta.lens[i] = d.length;
    meta.srcAddr[i] = srcAddr;
    meta.srcPort[i] = srcPort;
    meta.dstAddr[i] = LOCAL;
  });
  return { buf, meta, count: datagrams.length };
}

function run(e: PacketEngine, datagrams: Buffer[], nowMs = 1000, srcPort = 40000) {
  const b = batch(datagrams, srcPort);
  e.txSend.count = 0;
  e.processBatch(b.buf, SLOT_BYTES, b.count, b.meta, nowMs);
  const rx = Array.from({ length: e.rxSend.count }, (_, i) => b.buf.subarray(e.rxSend.offs[i]!, e.rxSend.offs[i]! + e.rxSend.lens[i]!));
  const tx = Array.from({ length: e.txSend.count }, (_, i) => e.txBuf.subarray(e.txSend.offs[i]!, e.txSend.offs[i]! + e.txSend.lens[i]!));
  return { rx: rx.map((x) => Buffer.from(x)), tx: tx.map((x) => Buffer.from(x)) };
}

const udp = (n: number, cookie = 7) => encodeGeneve({ flowCookie: cookie, endpointIdHi: 1, endpointIdLo: 2 }, buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1000, dstPort: 2000, payload: Buffer.from(`packet ${n}`) }));

/** Holds the first `holdCount` packets of each flow, then answers `then`. */
class HoldingStage implements Stage {
  readonly name = 'holding';
  readonly holdBudgetMs = 1000;
  seen = 0;
  expiredCalls = 0;
  constructor(private readonly holdCount: number, private readonly then: Action | 'continue', private readonly onExpire: Action = ACTION.PASS) {}
  onPacket(ctx: PacketContext) {
    this.seen++;
    if (this.seen <= this.holdCount) return STAGE_RESULT.HOLD;
    if (this.then === 'continue') return STAGE_RESULT.CONTINUE;
    ctx.action = this.then;
    return STAGE_RESULT.VERDICT;
  }
  onHoldExpired() {
    this.expiredCalls++;
    return this.onExpire;
  }
}

t.test('with an empty chain every packet goes back out of its own slot: IPs swapped, GWLB port kept, to 6081', async (t) => {
  const e = engine([]);
  const d = udp(1);
  const b = batch([d], 43210);
  e.processBatch(b.buf, SLOT_BYTES, 1, b.meta, 1000);
  t.equal(e.rxSend.count, 1);
  t.equal(e.rxSend.offs[0], HEADROOM_BYTES, 'sent from the receive slot, headroom in front');
  t.equal(e.rxSend.lens[0], d.length);
  t.equal(e.rxSend.srcAddr[0], LOCAL, 'source = the address GWLB sent to');
  t.equal(e.rxSend.dstAddr[0], GWLB, 'destination = GWLB');
  t.equal(e.rxSend.srcPort[0], 43210, 'source port = the port GWLB used');
  t.equal(e.rxSend.dstPort[0], 6081);
  t.equal(e.counters[COUNTER.PASSED], 1);
  t.equal(e.flows.size, 1);
});

t.test('held packets are released in order, before the packet that decided the flow', async (t) => {
  const e = engine([new HoldingStage(2, 'continue')]);
  const r1 = run(e, [udp(1), udp(2)]);
  t.same(r1.rx.length + r1.tx.length, 0, 'nothing leaves while held');
  t.equal(e.counters[COUNTER.HELD_PACKETS_NOW], 0, 'gauge updates on tick');
  e.tick(1001);
  t.equal(e.counters[COUNTER.HELD_PACKETS_NOW], 2);
  const r2 = run(e, [udp(3)]);
  t.same(r2.tx, [udp(1), udp(2)], 'held packets released first, byte-identical');
  t.same(r2.rx, [udp(3)]);
  t.equal(e.counters[COUNTER.HOLD_RELEASED], 2);
});

t.test('a blocking verdict discards everything held: no byte of the flow leaves', async (t) => {
  const e = engine([new HoldingStage(2, ACTION.DROP)]);
  run(e, [udp(1), udp(2)]);
  const r = run(e, [udp(3)]);
  t.same(r.rx.length + r.tx.length, 0);
  t.equal(e.counters[COUNTER.HOLD_DISCARDED], 2);
  t.equal(e.counters[COUNTER.DROPPED_POLICY], 1);
});

t.test('when the per-flow hold budget runs out, the holding stage fail mode decides', async (t) => {
  const passing = new HoldingStage(100, 'continue', ACTION.PASS);
  const e = engine([passing], { maxHeldPacketsPerFlow: 2 });
  const r = run(e, [udp(1), udp(2), udp(3)]);
  t.equal(passing.expiredCalls, 1);
  t.same(r.tx, [udp(1), udp(2)], 'fail-open: held packets released');
  t.same(r.rx, [udp(3)]);
  const blocking = new HoldingStage(100, 'continue', ACTION.DROP);
  const e2 = engine([blocking], { maxHeldPacketsPerFlow: 2 });
  const r2 = run(e2, [udp(1), udp(2), udp(3)]);
  t.same(r2.rx.length + r2.tx.length, 0, 'fail-closed: nothing released');
  t.equal(e2.counters[COUNTER.HOLD_DISCARDED], 2);
});

t.test('a hold older than the holding stage budget is decided by the stage on the timer', async (t) => {
  const stage = new HoldingStage(100, 'continue', ACTION.PASS);
  const e = engine([stage]);
  run(e, [udp(1)], 1000);
  e.txSend.count = 0;
  e.tick(1500);
  t.equal(e.txSend.count, 0, 'not yet expired');
  e.tick(2001);
  t.equal(stage.expiredCalls, 1);
  t.equal(e.txSend.count, 1, 'released by the timer');
});

t.test('at shutdown every held packet is decided at once by its holding stage fail mode (releaseHolds)', async (t) => {
  const pass = new HoldingStage(100, 'continue', ACTION.PASS);
  const e = engine([pass]);
  run(e, [udp(1), udp(2)], 1000);
  e.txSend.count = 0;
  e.releaseHolds();
  t.equal(pass.expiredCalls, 1, 'the stage decides, long before its 1 s budget');
  t.same(Array.from({ length: e.txSend.count }, (_, i) => e.txBuf.subarray(e.txSend.offs[i]!, e.txSend.offs[i]! + e.txSend.lens[i]!).toString('latin1').slice(-8)), ['packet 1', 'packet 2'], 'fail-open: released in order');
  t.equal(e.holds.packets, 0);
  const drop = new HoldingStage(100, 'continue', ACTION.DROP);
  const d = engine([drop]);
  run(d, [udp(1)], 1000);
  d.txSend.count = 0;
  d.releaseHolds();
  t.equal(d.txSend.count, 0, 'fail-closed: nothing leaves');
  t.equal(d.holds.packets, 0, 'and nothing stays held');
});

t.test('the memcap exception policy applies when the hold store is full', async (t) => {
  const stage = new HoldingStage(100, 'continue', ACTION.PASS);
  const big = udp(1);
  const e = engine([stage], { maxHeldBytes: big.length + HOLD_PACKET_OVERHEAD_BYTES, onMemcap: 'drop' });
  const r = run(e, [udp(1), udp(2)]);
  t.equal(e.counters[COUNTER.MEMCAP_DROPPED], 1);
  t.same(r.rx.length + r.tx.length, 0, 'on-memcap drop: the flow is blocked, held bytes discarded');
  const e2 = engine([new HoldingStage(100, 'continue', ACTION.PASS)], { maxHeldBytes: big.length + HOLD_PACKET_OVERHEAD_BYTES, onMemcap: 'pass' });
  const r2 = run(e2, [udp(1), udp(2)]);
  t.equal(e2.counters[COUNTER.MEMCAP_PASSED], 1);
  t.same(r2.tx, [udp(1)]);
  t.same(r2.rx, [udp(2)]);
});

t.test('malformed inner packets follow --on-malformed and are counted by reason', async (t) => {
  const truncatedTcp = encodeGeneve({ flowCookie: 1 }, buildIPv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2 }).subarray(0, 30));
  const fixLen = Buffer.from(truncatedTcp);
  fixLen.writeUInt16BE(30, 40 + 2); // IPv4 total length = 30: the TCP header is cut short
  const dropping = engine([]);
  t.same(run(dropping, [fixLen]).rx.length, 0);
  t.equal(dropping.counters[INNER_ANOMALY_BASE + PACKET_ANOMALY.TRUNCATED_TCP], 1);
  const passing = engine([], { onMalformed: 'pass' });
  t.same(run(passing, [fixLen]).rx, [fixLen]);
  t.equal(passing.counters[COUNTER.MALFORMED_PASSED], 1);
});

t.test('a self-test probe (from our own address) returns to the prober port, never to 6081, and creates no flow', async (t) => {
  const e = engine([new HoldingStage(100, ACTION.DROP)]);
  const probe = encodeGeneve({}, buildIPv4Udp({ src: '192.0.2.1', dst: '192.0.2.2', srcPort: 7, dstPort: PROBE_PORT, payload: NONCE }));
  const b = batch([probe], 55555, LOCAL);
  e.processBatch(b.buf, SLOT_BYTES, 1, b.meta, 1);
  t.equal(e.rxSend.count, 1);
  t.equal(e.rxSend.dstPort[0], 55555);
  t.equal(e.rxSend.dstAddr[0], LOCAL);
  t.equal(e.flows.size, 0);
  t.equal(e.counters[COUNTER.SELF_TEST_PACKETS], 1);
  const wrongNonce = encodeGeneve({}, buildIPv4Udp({ src: '192.0.2.1', dst: '192.0.2.2', srcPort: 7, dstPort: PROBE_PORT, payload: Buffer.from('fedcba9876543210') }));
  const b2 = batch([wrongNonce], 55555, LOCAL);
  e.processBatch(b2.buf, SLOT_BYTES, 1, b2.meta, 2);
  t.equal(e.rxSend.count, 0, "another process's probe is not returned");
  t.equal(e.counters[COUNTER.LOOP_DROPPED], 1, 'counted by the loop guard');
  t.equal(e.flows.size, 0, 'and never reaches the flow table');
});

t.test('loop guard: a datagram from one of our own addresses is never processed as traffic, whatever its port', async (t) => {
  const OWN_OTHER = 0x0a000005; // 10.0.0.5, another address of this host
  const e = engine([], {}, undefined, { ownAddrs: Uint32Array.from([OWN_OTHER]) });
  const d = udp(1);
  for (const [src, port] of [[LOCAL, 6081], [LOCAL, 40000], [OWN_OTHER, 6081]] as const) {
    const b = batch([d], port, src);
    e.processBatch(b.buf, SLOT_BYTES, 1, b.meta, 1);
    t.equal(e.rxSend.count, 0, `from ${src.toString(16)}:${port}: not returned`);
  }
  t.equal(e.counters[COUNTER.LOOP_DROPPED], 3);
  t.equal(e.flows.size, 0);
  t.same(run(e, [d]).rx, [d], 'the same datagram from GWLB comes back');
});

t.test('--gwlb-sources: other sources are dropped before decoding; originated packets go only to the source of the flow', async (t) => {
  const stage: Stage = { name: 'rejecting', onPacket: (ctx) => ((ctx.action = ACTION.REJECT), STAGE_RESULT.VERDICT) };
  const e = engine([stage], { gwlbSources: '127.0.0.0/30, 10.20.0.0/16' }, (_pkt, _buf, toSender, out, off) => out.write(toSender ? 'RST-a' : 'RST-b', off));
  const d = udp(1);
  const sendFrom = (src: number) => {
    const b = batch([d], 40000, src);
    e.txSend.count = 0;
    e.processBatch(b.buf, SLOT_BYTES, 1, b.meta, 1);
    return Array.from({ length: e.txSend.count }, (_, i) => e.txSend.dstAddr[i]);
  };
  t.same(sendFrom(GWLB), [GWLB, GWLB], 'an allowed source: RST both ways, to that source');
  const ATTACKER = 0x0a090909; // 10.9.9.9, outside both CIDRs
  t.same(sendFrom(ATTACKER), [], 'a packet of the same flow from another source originates nothing');
  t.equal(e.counters[COUNTER.SOURCE_NOT_ALLOWED], 1);
  t.equal(e.counters[COUNTER.REJECTED], 1, 'and is never decided');
  t.same(sendFrom(0x0a140101), [0x0a140101, 0x0a140101], 'the second CIDR is allowed too (10.20.1.1)');
  t.same(sendFrom(GWLB), [GWLB, GWLB], "RSTs follow the flow's newest allowed source");
  t.throws(() => engine([], { gwlbSources: '10.0.0.0/33' }), 'an invalid list is refused');
});

t.test('a fault on one packet costs that packet alone: --on-internal-fault drop or pass, the rest of the batch proceeds', async (t) => {
  const MARK = 'poison';
  const thrower: Stage = {
    name: 'throws-on-mark',
    onPacket: (ctx) => {
      const p = ctx.pkt;
      if (ctx.buf.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength).includes(MARK)) throw new Error('injected fault');
      return STAGE_RESULT.CONTINUE;
    },
  };
  const mk = (tag: string, port: number) => encodeGeneve({ flowCookie: port }, buildIPv4Udp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: port, dstPort: 53, payload: Buffer.from(tag) }));
  const datagrams = [mk('first', 1001), mk('second', 1002), mk(MARK, 1003), mk('fourth', 1004), mk('fifth', 1005)];
  for (const policy of ['drop', 'pass'] as const) {
    const faults: unknown[] = [];
    const e = engine([thrower], { onInternalFault: policy }, undefined, { onFault: (err) => faults.push(err) });
    const { rx } = run(e, datagrams);
    const expected = policy === 'drop' ? datagrams.filter((_, i) => i !== 2) : datagrams;
    t.same(rx, expected, `${policy}: every other packet of the batch comes back, in order`);
    t.equal(e.counters[COUNTER.INTERNAL_FAULTS], 1, `${policy}: one internal fault`);
    t.equal(e.counters[policy === 'drop' ? COUNTER.FAULT_DROPPED : COUNTER.FAULT_PASSED], 1, `${policy}: counted under its policy`);
    t.equal(e.counters[COUNTER.PASSED], 4, `${policy}: the other four passed the chain`);
    t.equal(faults.length, 1, `${policy}: the worker is told (to log it)`);
    t.match(String(faults[0]), /injected fault/);
  }
});

t.test('reject sends the builder output both ways inside the newest GENEVE header of the flow', async (t) => {
  const stage: Stage = { name: 'rejecting', onPacket: (ctx) => ((ctx.action = ACTION.REJECT), STAGE_RESULT.VERDICT) };
  const calls: boolean[] = [];
  const e = engine([stage], {}, (_pkt, _buf, toClient, out, off) => {
    calls.push(toClient);
    return out.write(toClient ? 'RST-to-client' : 'RST-to-server', off);
  });
  const first = udp(1, 0xaaaa);
  const second = udp(2, 0xbbbb);
  run(e, [first]);
  const r = run(e, [second]);
  t.same(calls, [true, false, true, false]);
  t.equal(r.tx.length, 2);
  const header = second.subarray(0, 40);
  t.same(r.tx[0]!.subarray(0, 40), header, 'newest header (cookie 0xbbbb) in front');
  t.equal(r.tx[0]!.subarray(40).toString(), 'RST-to-client');
  t.equal(r.tx[1]!.subarray(40).toString(), 'RST-to-server');
  t.equal(e.counters[COUNTER.ORIGINATED], 4);
  t.equal(e.counters[COUNTER.REJECTED], 2);
});

t.test('a new GWLB flow cookie on a known 5-tuple starts the flow afresh; the same cookie keeps it', async (t) => {
  const decided: number[] = [];
  const stage: Stage = {
    name: 'decide-once',
    onPacket: (ctx) => {
      if (ctx.newFlow) decided.push(ctx.flow);
      ctx.flows.setVerdict(ctx.flow, ACTION.DROP, 1);
      return STAGE_RESULT.CONTINUE;
    },
  };
  const e = engine([stage]);
  run(e, [udp(1, 0x1111), udp(2, 0x1111)]);
  t.equal(decided.length, 1, 'same cookie: one flow');
  run(e, [udp(3, 0x2222)]);
  t.equal(decided.length, 2, 'new cookie: evaluated as a new flow');
  t.equal(e.counters[COUNTER.FLOW_RENEWALS], 1);
  t.equal(e.flows.size, 1, 'the old entry is gone');
  const f = decided[1]!;
  t.equal(e.flows.flowCookie[f], 0x2222);
});

t.test('a SYN on a closed TCP flow opens a new flow', async (t) => {
  let created = 0;
  const stage: Stage = { name: 'count', onPacket: (ctx) => ((created += ctx.newFlow ? 1 : 0), STAGE_RESULT.CONTINUE) };
  const e = engine([stage]);
  const syn = encodeGeneve({ flowCookie: 5 }, buildIPv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1000, dstPort: 80, seq: 1, flags: 0x02 }));
  run(e, [syn]);
  e.flows.markClosed(0);
  run(e, [syn]);
  t.equal(created, 2);
  t.equal(e.counters[COUNTER.FLOW_RENEWALS], 1);
});

t.test('a release larger than the tx list is flushed in parts, in order, with nothing lost', async (t) => {
  const flushed: Buffer[] = [];
  const e: PacketEngine = new PacketEngine({
    settings: settings(),
    counters: createCounters(),
    flows: new FlowTable({ maxFlows: 64, tcpIdleMs: 350_000, otherIdleMs: 120_000 }),
    stages: [new HoldingStage(5, 'continue')],
    probeNonce: NONCE,
    txSlots: 2,
    flushTx: () => {
      for (let i = 0; i < e.txSend.count; i++) flushed.push(Buffer.from(e.txBuf.subarray(e.txSend.offs[i]!, e.txSend.offs[i]! + e.txSend.lens[i]!)));
      e.txSend.count = 0;
    },
  });
  const packets = [1, 2, 3, 4, 5, 6].map((n) => udp(n));
  const r = run(e, packets);
  const txNow = r.tx;
  t.same([...flushed, ...txNow], packets.slice(0, 5), 'all five held packets, in order');
  t.same(r.rx, [packets[5]]);
  t.equal(e.counters[COUNTER.SEND_FAILED], 0);
});
