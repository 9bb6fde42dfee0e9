#!/usr/bin/env node
// The content chain's cost on one core, in-process (docs/architecture.md §3.2): one HTTP upload of --mb MiB (default
// 100) as real GENEVE + IPv4 + TCP datagrams (1448-byte segments, the server ACKing every second one) through the
// real PacketEngine, in receive batches of 64, in four configurations that alternate round by round:
//   none  no content stage: the inspector is never called (the pass-through path)
//   idle  a content stage that wants no flow: the cost of the core being on for traffic nobody inspects
//   match the test stage in match mode: every byte reassembled, parsed as HTTP and searched
//   tail  the test stage in object_end mode: as match, and the object's tail held until a late (next-turn) answer
//   dlp   the DLP stage in block mode with every built-in pack, the whole upload in its scan depth (docs/dlp.md): the
//         body (bench/corpus.mjs: text, JSON, code, base64, digit runs) holds nothing it reports, so this is DLP's
//         cost on non-matching traffic; a finding would reject the upload and fail the run
// The event loop turns between batches, as in the worker, so late answers arrive while the transfer goes on.
// Prints one JSON line per configuration: MB/s of TCP payload and packets/s through the engine (medians of the
// rounds, with min..max) and the ratio to `none` measured in the same run. Run after `npm run build`: node bench/content.mjs [--mb N] [--rounds N]
import { parseArgs } from 'node:util';
import { PacketEngine, SLOT_BYTES, HEADROOM_BYTES, createRecvArrays } from '../dist/dataplane/engine.js';
import { createCounters, namedCounters } from '../dist/dataplane/counters.js';
import { FlowTable } from '../dist/flow/table.js';
import { resolveSettings } from '../dist/config/settings.js';
import { encodeGeneve } from '../dist/geneve/codec.js';
import { buildIPv4Tcp } from '../dist/packet/build.js';
import { TestMatchStage } from '../dist/content/test-stage.js';
import { DEFAULT_CONTENT_POLICY } from '../dist/content/inspector.js';
import { streamOptions } from '../dist/stream/options.js';
import { DlpStage } from '../dist/dlp/stage.js';
import { DlpSectionSchema } from '../dist/dlp/policy.js';
import { builtinPacks } from '../dist/dlp/detector.js';
import { mixedCorpus } from './corpus.mjs';

const { values: opt } = parseArgs({ options: { mb: { type: 'string' }, rounds: { type: 'string' } } });
const MB = Number(opt.mb ?? 100);
const ROUNDS = Number(opt.rounds ?? 3);
const MSS = 1448;
const BATCH = 64;
const C = '10.0.0.1';
const S = '10.0.0.2';
const ISN_C = 1000;
const ISN_S = 5000;
const ACK = 0x10;
const PSH = 0x08;
const SYN = 0x02;

const gen = (inner) => encodeGeneve({ flowCookie: 7, endpointIdHi: 1, endpointIdLo: 2 }, inner);
const cli = (seq, payload, flags = ACK | PSH) => gen(buildIPv4Tcp({ src: C, dst: S, srcPort: 40000, dstPort: 80, seq, ack: ISN_S + 1, flags, window: 65535, payload }));
const srv = (ack, flags = ACK) => gen(buildIPv4Tcp({ src: S, dst: C, srcPort: 80, dstPort: 40000, seq: ISN_S + 1, ack, flags, window: 65535 }));

/** `len` body bytes from body offset `at`: the corpus, repeated. */
function bodyAt(at, len) {
  const out = Buffer.allocUnsafe(len);
  for (let o = 0; o < len; ) {
    const c = (at + o) % CORPUS.length;
    o += CORPUS.copy(out, o, c, Math.min(CORPUS.length, c + len - o));
  }
  return out;
}

// The transfer, built once: handshake, head + body segments, the server's ACKs.
const bodyBytes = MB * 1024 * 1024;
const head = Buffer.from(`POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: ${bodyBytes}\r\n\r\n`);
const CORPUS = mixedCorpus(4 * 1024 * 1024);
const packets = [gen(buildIPv4Tcp({ src: C, dst: S, srcPort: 40000, dstPort: 80, seq: ISN_C, flags: SYN, window: 65535 })), srv(ISN_C + 1, SYN | ACK), cli(ISN_C + 1, Buffer.alloc(0), ACK)];
const total = head.length + bodyBytes;
let payloadBytes = 0;
for (let off = 0, n = 0; off < total; off += MSS, n++) {
  const len = Math.min(MSS, total - off);
  const seg = off < head.length ? Buffer.concat([head.subarray(off), bodyAt(0, len - (head.length - off))]) : bodyAt(off - head.length, len);
  packets.push(cli((ISN_C + 1 + off) >>> 0, seg));
  payloadBytes += len;
  if (n % 2 === 1) packets.push(srv((ISN_C + 1 + off + len) >>> 0));
}
packets.push(srv((ISN_C + 1 + total) >>> 0));

// Receive batches laid out as recvBatch would, built once too (the measurement is the engine, not the copying).
const batches = [];
for (let i = 0; i < packets.length; i += BATCH) {
  const slice = packets.slice(i, i + BATCH);
  const buf = Buffer.alloc(slice.length * SLOT_BYTES);
  const meta = createRecvArrays(slice.length);
  slice.forEach((d, j) => {
    d.copy(buf, j * SLOT_BYTES + HEADROOM_BYTES);
    meta.lens[j] = d.length;
    meta.srcAddr[j] = 0x7f000002;
    meta.srcPort[j] = 50000;
    meta.dstAddr[j] = 0x7f000001;
  });
  batches.push({ buf, meta, count: slice.length });
}

const NOBODY = { name: 'idle', blocking: true, holdBudgetBytes: 1 << 20, holdBudgetMs: 5000, wants: () => false, onObjectStart() {}, onBody() {}, onObjectEnd() {}, onHoldExceeded: () => 1, onFlowEnd() {} };
const stageOf = (mode) =>
  new TestMatchStage({ bytes: 'NEVER-IN-THIS-BODY', action: 'reject', mode, verdict_delay_ms: 0, hold_budget_ms: 60_000, hold_budget_bytes: 1 << 30, fail: 'closed' });
const CONFIGS = {
  none: () => [],
  idle: () => [NOBODY],
  match: () => [stageOf('match')],
  tail: () => [stageOf('object_end')],
  dlp: () => [
    new DlpStage(
      {
        section: DlpSectionSchema.parse({ enabled: true, packs: [...builtinPacks().keys()], scan_depth_bytes: { to_server: 2 ** 30, to_client: 1 << 20 }, hold_budget_ms: 60_000 }),
        scopes: new Map(),
      },
      { log: (e) => { if (process.env.BENCH_DEBUG) console.error(JSON.stringify(e)); }, wallNowMs: () => Date.now() },
      Buffer.alloc(32, 1),
    ),
  ],
};

async function once(name) {
  const settings = { ...resolveSettings({}, {}), batchSize: BATCH };
  const counters = createCounters();
  const flows = new FlowTable({ maxFlows: 1024, tcpIdleMs: 350_000, otherIdleMs: 120_000 });
  let sent = 0;
  const e = new PacketEngine({ settings, counters, flows, stages: [], probeNonce: Buffer.alloc(16), flushTx: () => { sent += e.txSend.count; e.txSend.count = 0; } });
  // The whole upload is inspected (stream depth above its size).
  e.content.configure(CONFIGS[name](), { ...DEFAULT_CONTENT_POLICY, stream: streamOptions({ onHole: 'skip', depthBytes: 2 ** 30 }) }, () => ({ index: 0, name: 'default' }));
  const t0 = process.hrtime.bigint();
  let now = 1000;
  for (const b of batches) {
    e.processBatch(b.buf, SLOT_BYTES, b.count, b.meta, now);
    sent += e.rxSend.count + e.txSend.count;
    e.txSend.count = 0;
    now += 0.01;
    // As the worker does between wake-ups: timers and late answers run between batches.
    await new Promise((r) => setImmediate(r));
  }
  // The tail's answer comes on a later turn of the event loop: wait for it.
  while (sent < packets.length && Number(process.hrtime.bigint() - t0) < 60e9) await new Promise((r) => setImmediate(r));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = namedCounters(counters);
  if (sent !== packets.length) throw new Error(`${name}: ${sent} of ${packets.length} packets went out (${JSON.stringify({ held: c.content_held, released: c.content_released })})`);
  return { mbps: payloadBytes / 1e6 / s, pps: packets.length / s, held: c.content_held };
}

const runs = Object.fromEntries(Object.keys(CONFIGS).map((k) => [k, []]));
// One warm-up round (compiled code, heap sized), not counted; then the rounds, alternating the configurations.
for (const name of Object.keys(CONFIGS)) await once(name);
for (let r = 0; r < ROUNDS; r++) for (const name of Object.keys(CONFIGS)) runs[name].push(await once(name));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(runs.none.map((x) => x.mbps));
for (const [name, xs] of Object.entries(runs)) {
  const m = xs.map((x) => x.mbps);
  console.log(JSON.stringify({ bench: 'content', config: name, payload_mb: Math.round(payloadBytes / 1e6), packets: packets.length, rounds: ROUNDS, mbps: Math.round(median(m)), pps: Math.round(median(xs.map((x) => x.pps))), spread: [Math.round(Math.min(...m)), Math.round(Math.max(...m))], ratio_to_none: Math.round((median(m) / base) * 1000) / 1000, held_packets: xs[0].held }));
}
