/**
 * The content inspector in the real packet engine, with real GENEVE + IPv4 + TCP bytes: the cleared-offset
 * contract (docs/architecture.md §3.2). What the test checks is what the engine sends: the datagrams that would
 * reach the far end, in order.
 */
import t from 'tap';
import { PacketEngine } from '../../src/dataplane/engine.js';
import { runBatch as run, drainTx } from '../helpers/engine-batch.js';
import { createCounters, namedCounters } from '../../src/dataplane/counters.js';
import { FlowTable } from '../../src/flow/table.js';
import { resolveSettings, type Settings } from '../../src/config/settings.js';
import { encodeGeneve, decodeGeneve } from '../../src/geneve/codec.js';
import { createGeneveHeader } from '../../src/geneve/types.js';
import { decodeInner } from '../../src/packet/decode.js';
import { createInnerPacket, TCP_FLAG } from '../../src/packet/types.js';
import { buildIPv4Tcp } from '../../src/packet/build.js';
import { writeReject } from '../../src/packet/reject.js';
import { TestMatchStage } from '../../src/content/test-stage.js';
import { DEFAULT_CONTENT_POLICY, type ContentPolicy } from '../../src/content/inspector.js';
import { ACTION, type Action } from '../../src/pipeline/stage.js';
import { CLEARED_ALL, type ContentFlowMeta, type ContentFlowView, type ContentStage } from '../../src/pipeline/content.js';
import type { HttpEndReason } from '../../src/stream/http1.js';
import { streamOptions } from '../../src/stream/options.js';
import { fragmentV4 } from '../fixtures/fragments.js';

const NONCE = Buffer.from('0123456789abcdef');
const C = '10.0.0.1';
const S = '10.0.0.2';
const CPORT = 40000;
const SPORT = 80;
const ISN_C = 1000;
const ISN_S = 900000;

function engine(stages: ContentStage[], policy: Partial<ContentPolicy> = {}, over: Partial<Record<keyof Settings, unknown>> = {}) {
  const settings = { ...resolveSettings({}, {}), batchSize: 64, ...over } as Settings;
  const counters = createCounters();
  const flows = new FlowTable({ maxFlows: 1024, tcpIdleMs: 350_000, otherIdleMs: 120_000 });
  const logs: unknown[] = [];
  const e = new PacketEngine({ settings, counters, flows, stages: [], probeNonce: NONCE, rejectBuilder: writeReject, onContentLog: (ev) => logs.push(ev) });
  e.content.configure(stages, { ...DEFAULT_CONTENT_POLICY, ...policy }, () => ({ index: 0, name: 'default' }));
  return { e, counters, logs };
}



const gen = (inner: Buffer) => encodeGeneve({ flowCookie: 7, endpointIdHi: 1, endpointIdLo: 2 }, inner);
const cli = (seq: number, payload: string | Buffer, flags: number = TCP_FLAG.ACK | TCP_FLAG.PSH) =>
  gen(buildIPv4Tcp({ src: C, dst: S, srcPort: CPORT, dstPort: SPORT, seq, ack: ISN_S + 1, flags, window: 65535, payload: typeof payload === 'string' ? Buffer.from(payload) : payload }));
const srv = (seq: number, ack: number, payload: string | Buffer = '', flags: number = TCP_FLAG.ACK) =>
  gen(buildIPv4Tcp({ src: S, dst: C, srcPort: SPORT, dstPort: CPORT, seq, ack, flags, window: 65535, payload: typeof payload === 'string' ? Buffer.from(payload) : payload }));
const syn = () => gen(buildIPv4Tcp({ src: C, dst: S, srcPort: CPORT, dstPort: SPORT, seq: ISN_C, flags: TCP_FLAG.SYN, window: 65535 }));
const synAck = () => srv(ISN_S, ISN_C + 1, '', TCP_FLAG.SYN | TCP_FLAG.ACK);
const ack = () => cli(ISN_C + 1, '', TCP_FLAG.ACK);

/** Inner TCP payload text of a sent datagram, or null for another kind of packet. */
function payloadOf(d: Buffer): { flags: number; seq: number; text: string; fromClient: boolean } {
  const gh = createGeneveHeader();
  decodeGeneve(d, 0, d.length, gh);
  const p = createInnerPacket();
  decodeInner(d, gh.headerLength, d.length - gh.headerLength, gh.protocolType, p);
  return { flags: p.tcpFlags, seq: p.tcpSeq, text: d.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength).toString('latin1'), fromClient: p.srcPort === CPORT };
}

function handshake(e: PacketEngine) {
  return run(e, [syn(), synAck(), ack()]);
}

const matcher = (over: Record<string, unknown> = {}) =>
  new TestMatchStage({ bytes: 'EVIL', action: 'reject', mode: 'match', verdict_delay_ms: 0, hold_budget_ms: 5000, hold_budget_bytes: 1 << 20, fail: 'closed', ...over } as never);

t.test('no content stage: every packet goes out unchanged from its slot (the inspector is idle)', async (t) => {
  const { e, counters } = engine([]);
  const out = run(e, [syn(), synAck(), ack(), cli(ISN_C + 1, 'hello EVIL')]);
  t.equal(out.length, 4);
  t.equal(namedCounters(counters)['content_flows_started'], 0);
});

t.test('match mode: a pattern split over 1-byte segments is caught; the segment completing it never leaves, RSTs go to both ends', async (t) => {
  const { e, counters, logs } = engine([matcher()]);
  t.equal(handshake(e).length, 3, 'SYN, SYN-ACK, ACK pass: no bytes to inspect');
  const req = 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nabcdEVIL';
  const sent: Buffer[] = [];
  for (let i = 0; i < req.length; i++) sent.push(...run(e, [cli(ISN_C + 1 + i, req[i] as string)]));
  const data = sent.map(payloadOf).filter((p) => p.text.length > 0);
  const delivered = data.filter((p) => p.fromClient).map((p) => p.text).join('');
  t.equal(delivered, req.slice(0, -1), 'every byte but the one completing the pattern went out');
  const rsts = sent.map(payloadOf).filter((p) => (p.flags & TCP_FLAG.RST) !== 0);
  t.equal(rsts.length, 2, 'one RST toward each end');
  t.equal(run(e, [cli(ISN_C + 1 + req.length, 'more')]).length, 0, 'later packets of the flow are dropped');
  t.equal(namedCounters(counters)['content_verdict_reject'], 1);
  t.match(logs[0], { kind: 'flow_verdict', stage: 'test', action: 'reject', reason: 'test.match', dstPort: 80, src: C });
});

t.test('a pattern split across reordered segments is caught before the completing bytes go out', async (t) => {
  const { e } = engine([matcher({ action: 'drop' })]);
  handshake(e);
  const head = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  // Opaque stream (not HTTP) in three segments, sent 3, 1, 2: "..EV" "IL.." arrive out of order.
  const a = '{xEV';
  const b = 'ILyy';
  const c = 'zz';
  const s0 = ISN_C + 1;
  void head;
  const out1 = run(e, [cli(s0 + a.length + b.length, c)]);
  t.equal(out1.length, 0, 'a segment after a hole waits: its bytes are not inspected yet');
  const out2 = run(e, [cli(s0, a)]);
  t.same(out2.map((d) => payloadOf(d).text), [], 'the first segment is clear but waits behind the earlier-arrived held one (release in arrival order)');
  const out3 = run(e, [cli(s0 + a.length, b)]);
  t.same(out3.map((d) => payloadOf(d).text).filter((x) => x !== ''), [], 'the hole filler completes EVIL: neither it nor the held segment goes out');
});

t.test('retransmission with other bytes: the inspected bytes win, the differing copy is dropped', async (t) => {
  const { e, counters } = engine([matcher()]);
  handshake(e);
  const s0 = ISN_C + 1;
  t.equal(run(e, [cli(s0, '{harmless}')]).length, 1, 'not HTTP (starts with "{"): an opaque stream, inspected at once');
  // Same sequence numbers, other bytes (the classic evasion): the receiver has the first copy; this one is dropped.
  t.equal(run(e, [cli(s0, '{EVILEVIL}')]).length, 0);
  t.equal(namedCounters(counters)['stream_anomaly_overlap_different_data'], 1);
  t.equal(namedCounters(counters)['content_segments_dropped'], 1);
});

t.test('object_end mode: everything but the tail flows; the tail waits for the answer, server ACKs release nothing', async (t) => {
  const { e } = engine([matcher({ mode: 'object_end', verdict_delay_ms: 30 })]);
  handshake(e);
  const body = 'a'.repeat(300);
  const head = `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`;
  const s0 = ISN_C + 1;
  const p1 = run(e, [cli(s0, head + body.slice(0, 100))]);
  t.equal(p1.length, 1, 'an object in progress is not held');
  const p2 = run(e, [cli(s0 + head.length + 100, body.slice(100))]);
  t.equal(p2.length, 0, 'the segment completing the object waits');
  const serverAck = run(e, [srv(ISN_S + 1, s0 + head.length + body.length)]);
  t.same(serverAck.map((d) => payloadOf(d).fromClient), [false], "the server's ACK goes through and releases no client byte");
  await new Promise((r) => setTimeout(r, 80));
  const later = drainTx(e);
  t.same(later.map((d) => payloadOf(d).text), [body.slice(100)], 'the clean answer released the tail');
});

t.test('object_end mode: an infected object never arrives whole; the answer 2 s later resets both ends', async (t) => {
  const { e } = engine([matcher({ mode: 'object_end', verdict_delay_ms: 200 })]);
  handshake(e);
  const body = 'xxxxEVILxxxx';
  const req = `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  t.equal(run(e, [cli(ISN_C + 1, req)]).length, 0, 'a whole object in one segment waits');
  await new Promise((r) => setTimeout(r, 300));
  const out = drainTx(e);
  t.equal(out.filter((d) => (payloadOf(d).flags & TCP_FLAG.RST) !== 0).length, 2, 'RSTs to both ends, built from the held packet');
  t.equal(out.filter((d) => payloadOf(d).text.length > 0).length, 0, 'no byte of the object went out');
});

t.test('pipelined objects: the first clean answer releases up to the second object, not past it', async (t) => {
  const stage = new ManualStage();
  const { e } = engine([stage]);
  handshake(e);
  const r1 = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n';
  const r2 = 'GET /b HTTP/1.1\r\nHost: x\r\n\r\n';
  const s0 = ISN_C + 1;
  t.equal(run(e, [cli(s0, r1)]).length, 0);
  t.equal(run(e, [cli(s0 + r1.length, r2)]).length, 0);
  t.same(stage.pins, [0, r1.length]);
  stage.answer(1);
  t.same(drainTx(e).length, 0, 'the second object answered first: nothing goes (the first still waits)');
  stage.answer(0);
  t.same(drainTx(e).map((d) => payloadOf(d).text), [r1, r2], 'then both, in order');
});

t.test('hold budget: ms runs out → the stage fail mode decides (closed drops, open passes)', async (t) => {
  for (const fail of ['closed', 'open'] as const) {
    const { e, counters } = engine([matcher({ mode: 'object_end', verdict_delay_ms: 60_000, hold_budget_ms: 100, fail })]);
    handshake(e, );
    const req = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    t.equal(run(e, [cli(ISN_C + 1, req)]).length, 0);
    e.tick(1050);
    t.equal(drainTx(e).length, 0, `${fail}: within the budget nothing happens`);
    e.tick(1200);
    const out = drainTx(e);
    if (fail === 'open') t.same(out.map((d) => payloadOf(d).text), [req], 'open: released');
    else t.equal(out.filter((d) => payloadOf(d).text.length > 0).length, 0, 'closed: discarded');
    t.equal(namedCounters(counters)['content_budget_ms'], 1);
    await e.content.configure([], DEFAULT_CONTENT_POLICY, () => ({ index: 0, name: 'default' }));
  }
});

t.test('hold memcap: a packet the memcap refuses follows on_memcap', async (t) => {
  const { e, counters } = engine([matcher({ mode: 'object_end', verdict_delay_ms: 60_000 })], {}, { maxHeldBytes: 700 });
  handshake(e);
  const req = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  t.equal(run(e, [cli(ISN_C + 1, req)]).length, 0, 'held (fits)');
  t.equal(run(e, [cli(ISN_C + 1 + req.length, req)]).length, 0, 'refused: dropped');
  t.equal(namedCounters(counters)['content_memcap_dropped'], 1);
});

t.test('bytes after an accepted RST are dropped (inspection of that stream has ended)', async (t) => {
  const { e, counters } = engine([matcher()]);
  handshake(e);
  const s0 = ISN_C + 1;
  t.equal(run(e, [cli(s0, '{hello}')]).length, 1);
  t.equal(run(e, [cli(s0 + 7, '', TCP_FLAG.RST)]).length, 1, 'the RST itself passes');
  t.equal(run(e, [cli(s0 + 7, '{EVIL after reset}')]).length, 0);
  t.equal(namedCounters(counters)['content_after_reset_dropped'], 1);
});

t.test('a hole that outlives the wait: on_hole_timeout reject_flow ends the flow', async (t) => {
  const { e, counters } = engine([matcher()], { stream: streamOptions({ onHole: 'skip', holeWaitMs: 100 }) });
  handshake(e);
  const s0 = ISN_C + 1;
  t.equal(run(e, [cli(s0 + 10, 'after the hole')], 1000).length, 0);
  e.tick(1200);
  const out = drainTx(e);
  t.equal(out.filter((d) => (payloadOf(d).flags & TCP_FLAG.RST) !== 0).length, 2);
  t.equal(out.filter((d) => payloadOf(d).text.length > 0).length, 0, 'the bytes after the hole never went out');
  t.equal(namedCounters(counters)['content_hole_timeouts'], 1);
});

t.test('IP-fragmented TCP of an inspected flow is dropped (on_fragment), also when every packet of the flow is fragmented', async (t) => {
  const frag = (seq: number, payload: string, flags: number, id: number) => {
    const whole = buildIPv4Tcp({ src: C, dst: S, srcPort: CPORT, dstPort: SPORT, seq, ack: ISN_S + 1, flags, window: 65535, payload: Buffer.from(payload) });
    return fragmentV4(whole, C, S, id, [{ start: 0, stop: 24 }, { start: 24, stop: whole.length - 20 }]).map(gen);
  };
  const { e, counters } = engine([matcher()]);
  // Every packet the inspector sees of this flow is a fragment (a flow picked up mid-stream whose segments are all
  // fragmented): it is first seen through a fragment, and still inspected.
  const out = run(e, frag(ISN_C + 1, '{harmless? no: EVIL}', TCP_FLAG.ACK | TCP_FLAG.PSH, 2));
  t.equal(out.filter((d) => d.length > 70).length, 0, 'neither fragment of the data segment went out');
  t.ok(namedCounters(counters)['content_fragments_dropped']! >= 1);
  t.equal(namedCounters(counters)['content_flows_started'], 1, 'the flow was inspected');
  const pass = engine([matcher()], { onFragment: 'pass' });
  run(pass.e, [syn(), synAck(), ack()]);
  t.equal(run(pass.e, frag(ISN_C + 1, '{fine}', TCP_FLAG.ACK | TCP_FLAG.PSH, 3)).length, 2, 'on_fragment pass: both fragments go, uninspected');
  t.equal(namedCounters(pass.counters)['content_fragments_passed'], 1);
});

t.test('urgent data: a segment with URG would lose its urgent byte at the receiver, so it is dropped (on_urgent)', async (t) => {
  const { e, counters } = engine([matcher()]);
  handshake(e);
  // "EV" + urgent "X" + "IL": inspected inline it is EVXIL (no match), but the application would read EVIL.
  const urg = gen(buildIPv4Tcp({ src: C, dst: S, srcPort: CPORT, dstPort: SPORT, seq: ISN_C + 1, ack: ISN_S + 1, flags: TCP_FLAG.ACK | TCP_FLAG.PSH | TCP_FLAG.URG, window: 65535, urgent: 3, payload: Buffer.from('{EVXIL}') }));
  t.equal(run(e, [urg]).length, 0, 'dropped');
  t.equal(namedCounters(counters)['content_urgent_dropped'], 1);
  const pass = engine([matcher()], { onUrgent: 'pass' });
  handshake(pass.e);
  t.equal(run(pass.e, [urg]).length, 1, 'on_urgent pass: it goes (inspected inline)');
});

/** A blocking stage that pins each object's end and answers when the test says (pins in object order). */
class ManualStage implements ContentStage {
  readonly name = 'manual';
  readonly blocking = true;
  readonly holdBudgetBytes = 1 << 20;
  readonly holdBudgetMs = 60_000;
  pins: number[] = [];
  private open: number[] = [];
  private view: ContentFlowView | null = null;
  wants(_m: ContentFlowMeta) {
    return true;
  }
  onObjectStart() {}
  onBody() {}
  onObjectEnd(view: ContentFlowView, dir: number, _r: HttpEndReason) {
    if (dir !== 0) return;
    this.view = view;
    this.pins.push(view.chunkStart);
    this.open.push(view.chunkStart);
    view.setCleared(this, 0, Math.min(...this.open));
  }
  answer(i: number) {
    this.open = this.open.filter((p) => p !== this.pins[i]);
    this.view?.setCleared(this, 0, this.open.length === 0 ? CLEARED_ALL : Math.min(...this.open));
  }
  onHoldExceeded(): Action {
    return ACTION.DROP;
  }
  onFlowEnd() {}
}
