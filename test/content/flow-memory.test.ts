/**
 * CONTENT_FLOW_BYTES (src/config/settings.ts) is what the worst-case memory check charges per inspected flow,
 * besides its stream buffers (which the stream memcap bounds). Measured here: 5,000 TCP flows opened through the
 * real engine with a content stage that inspects them (SYN, then a request head each), heap and external memory
 * after GC, minus the same traffic with no content stage (flow table, packet buffers), minus the reassembly bytes
 * the memcap accounts for. If the per-flow cost grows past the constant, the check undercounts: this fails.
 */
import t from 'tap';
import { PacketEngine, SLOT_BYTES, HEADROOM_BYTES, createRecvArrays } from '../../src/dataplane/engine.js';
import { createCounters } from '../../src/dataplane/counters.js';
import { FlowTable } from '../../src/flow/table.js';
import { resolveSettings, CONTENT_FLOW_BYTES, type Settings } from '../../src/config/settings.js';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Tcp } from '../../src/packet/build.js';
import { TestMatchStage } from '../../src/content/test-stage.js';
import { DEFAULT_CONTENT_POLICY } from '../../src/content/inspector.js';
import type { ContentStage } from '../../src/pipeline/content.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const N = 5024; // a whole number of 32-flow batches

function measure(stages: ContentStage[]): { bytes: number; streamBytes: number } {
  const settings = { ...resolveSettings({}, {}), batchSize: 64, contentMaxFlows: N * 2 } as Settings;
  const flows = new FlowTable({ maxFlows: N * 2, tcpIdleMs: 1e9, otherIdleMs: 1e9 });
  const e = new PacketEngine({ settings, counters: createCounters(), flows, stages: [], probeNonce: Buffer.alloc(16) });
  e.content.configure(stages, DEFAULT_CONTENT_POLICY, () => ({ index: 0, name: 'default' }));
  const head = Buffer.from('GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench\r\n\r\n');
  const mk = (i: number, flags: number, seq: number, payload: Buffer) =>
    encodeGeneve({ flowCookie: 1 }, buildIPv4Tcp({ src: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, dst: '10.200.0.1', srcPort: 40000, dstPort: 80, seq, ack: 1, flags, window: 65535, payload }));
  const buf = Buffer.alloc(64 * SLOT_BYTES);
  const meta = createRecvArrays(64);
  gc();
  const before = process.memoryUsage();
  for (let i = 0; i < N; i += 32) {
    const list: Buffer[] = [];
    for (let j = i; j < i + 32; j++) list.push(mk(j, 0x02, 100, Buffer.alloc(0)), mk(j, 0x18, 101, head));
    list.forEach((d, k) => {
      d.copy(buf, k * SLOT_BYTES + HEADROOM_BYTES);
      meta.lens[k] = d.length;
      meta.srcAddr[k] = 0x7f000002;
      meta.srcPort[k] = 5;
      meta.dstAddr[k] = 0x7f000001;
    });
    e.processBatch(buf, SLOT_BYTES, list.length, meta, 1000);
    e.txSend.count = 0;
  }
  gc();
  const after = process.memoryUsage();
  const streamBytes = (e.content as unknown as { o: { memcap: { usedBytes: number } } }).o.memcap.usedBytes;
  // Keep the engine reachable until measured.
  if (e.content.flowCount !== (stages.length > 0 ? N : 0)) throw new Error(`inspected ${e.content.flowCount} flows`);
  return { bytes: after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers), streamBytes };
}

t.test('an inspected flow costs at most CONTENT_FLOW_BYTES besides its stream buffers', async (t) => {
  const stage = new TestMatchStage({ bytes: 'NEVER', action: 'drop', mode: 'match', verdict_delay_ms: 0, hold_budget_ms: 5000, hold_budget_bytes: 1 << 20, fail: 'closed' });
  const base = measure([]);
  const inspected = measure([stage]);
  const perFlow = (inspected.bytes - inspected.streamBytes - base.bytes) / N;
  t.ok(perFlow > 1000, `the measurement sees the inspection state (${Math.round(perFlow)} bytes per flow)`);
  t.ok(perFlow <= CONTENT_FLOW_BYTES, `${Math.round(perFlow)} bytes per inspected flow ≤ CONTENT_FLOW_BYTES (${CONTENT_FLOW_BYTES})`);
});
