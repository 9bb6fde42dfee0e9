// Flow table micro-benchmark: memory for 1,000,000 concurrent flows, lookups/s and creates/s, and the same
// lookups through a Map keyed by a template string (the design we rejected, docs/architecture.md §3).
// Build first: cd /work/main && npx tsc -p .   Run: node bench/flow-table.mjs [--flows N]
// One JSON line per measurement. Acceptance: 1,000,000 flows in ≤ 300 MB RSS for the whole process.
// Each memory measurement runs in its own child process so its RSS and peak RSS are its own.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { FlowTable } from '../dist/flow/table.js';
import { createInnerPacket } from '../dist/packet/types.js';

const argFlows = process.argv.indexOf('--flows');
const FLOWS = argFlows > 0 ? Number(process.argv[argFlows + 1]) : 1_000_000;
const argMemory = process.argv.indexOf('--memory');
const MEMORY_MODE = argMemory > 0 ? process.argv[argMemory + 1] : undefined;
const MB = 1024 * 1024;
const GWLB_HEADER_BYTES = 40;

// Force full GCs between phases so heap figures are live data, with or without --expose-gc.
let gc = globalThis.gc;
if (typeof gc !== 'function') {
  v8.setFlagsFromString('--expose-gc');
  gc = vm.runInNewContext('gc');
}
function collect() {
  for (let i = 0; i < 3; i++) gc();
}
function mem() {
  const m = process.memoryUsage();
  return { rss_mb: +(m.rss / MB).toFixed(1), heap_used_mb: +(m.heapUsed / MB).toFixed(1), array_buffers_mb: +(m.arrayBuffers / MB).toFixed(1) };
}
function emit(obj) {
  process.stdout.write(JSON.stringify({ bench: 'flow-table', flows: FLOWS, ...obj }) + '\n');
}

// Flow i: a distinct 5-tuple through one of 8 GWLB endpoints (the key includes the endpoint id); every fourth
// flow IPv6, half of the rest UDP.
const EP_HI = 0x0a1b2c3d;
const epLo = (i) => (0x4e5f6000 | (i & 7)) >>> 0;
function fill(pkt, i, reversed) {
  const v6 = (i & 3) === 3;
  const s = pkt.src;
  const d = pkt.dst;
  if (v6) {
    s[0] = 0x20010db8; s[1] = 0; s[2] = i >>> 16; s[3] = i & 0xffff;
    d[0] = 0x20010db8; d[1] = 1; d[2] = 0; d[3] = 1 + (i % 250);
  } else {
    s[0] = 0; s[1] = 0; s[2] = 0xffff; s[3] = (0x0a000000 | i) >>> 0;
    d[0] = 0; d[1] = 0; d[2] = 0xffff; d[3] = (0xc0000200 | (i % 250)) >>> 0;
  }
  pkt.ipVersion = v6 ? 6 : 4;
  pkt.protocol = (i & 1) === 0 ? 6 : 17;
  pkt.srcPort = 1024 + (i % 50_000);
  pkt.dstPort = (i & 1) === 0 ? 443 : 53;
  pkt.ipLength = 1500;
  if (reversed) {
    for (let w = 0; w < 4; w++) {
      const t = s[w];
      s[w] = d[w];
      d[w] = t;
    }
    const p = pkt.srcPort;
    pkt.srcPort = pkt.dstPort;
    pkt.dstPort = p;
  }
}

function permutation(n, seed) {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  let x = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const j = x % (i + 1);
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}

const pkt = createInnerPacket();
const header = Buffer.alloc(GWLB_HEADER_BYTES);

// (1) Memory: 1,000,000 concurrent flows, each with a 40-byte GWLB header stored, as in production.
// mode 'growth': default initialCapacity, storage doubles; 'preallocated': initialCapacity = maxFlows (pages are
// committed only as flows are written, so an idle table still costs little).
function insertAll(table, n) {
  for (let i = 0; i < n; i++) {
    fill(pkt, i, false);
    const f = table.lookupOrCreate(pkt, EP_HI, epLo(i), i * 0.001);
    header.writeUInt32BE(i, 36); // the flow cookie sits in the last 4 bytes
    table.storeHeader(f, header, 0, GWLB_HEADER_BYTES, 0x0a000001, 0x0a000002, 40000);
    table.countPacket(f, table.direction, 1500);
  }
}
if (MEMORY_MODE !== undefined) {
  collect();
  const before = mem();
  const table = new FlowTable(MEMORY_MODE === 'preallocated' ? { maxFlows: FLOWS, initialCapacity: FLOWS } : { maxFlows: FLOWS });
  collect();
  const idle = mem();
  insertAll(table, FLOWS);
  collect();
  const after = mem();
  emit({
    measure: 'memory',
    mode: MEMORY_MODE,
    size: table.size,
    capacity: table.capacity,
    rss_before_mb: before.rss_mb,
    rss_idle_table_mb: idle.rss_mb,
    rss_mb: after.rss_mb,
    rss_delta_mb: +(after.rss_mb - before.rss_mb).toFixed(1),
    peak_rss_mb: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
    heap_used_mb: after.heap_used_mb,
    array_buffers_mb: after.array_buffers_mb,
    bytes_per_flow: Math.round(((after.rss_mb - before.rss_mb) * MB) / FLOWS),
    accept_rss_le_300_mb: after.rss_mb <= 300,
  });
  process.exit(0);
}
for (const mode of ['growth', 'preallocated']) {
  const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--flows', String(FLOWS), '--memory', mode], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (child.status !== 0) throw new Error(`memory child (${mode}) exited with ${child.status}`);
}

// Creates with growth from the default initial capacity (includes every doubling and re-index).
let t0 = performance.now();
let table = new FlowTable({ maxFlows: FLOWS });
insertAll(table, FLOWS);
const createGrowMs = performance.now() - t0;
emit({ measure: 'create_with_growth', create_ns: +((createGrowMs * 1e6) / FLOWS).toFixed(1), note: 'includes storeHeader and countPacket' });

// (2) Lookups on existing flows, random order, random direction; the packet fill alone is timed separately.
const order = permutation(FLOWS, 0x9e3779b9);
function fillOnly() {
  let sink = 0;
  const t = performance.now();
  for (let k = 0; k < FLOWS; k++) {
    const i = order[k];
    fill(pkt, i, (i & 8) !== 0);
    sink += pkt.srcPort;
  }
  return [performance.now() - t, sink];
}
function lookups() {
  let found = 0;
  const t = performance.now();
  for (let k = 0; k < FLOWS; k++) {
    const i = order[k];
    fill(pkt, i, (i & 8) !== 0);
    if (table.lookup(pkt, EP_HI, epLo(i), 2000) >= 0) found++;
  }
  return [performance.now() - t, found];
}
lookups(); // warm-up pass
const [fillMs] = fillOnly();
const [lookupMs, found] = lookups();
if (found !== FLOWS) throw new Error(`lookup found ${found} of ${FLOWS}`);
emit({
  measure: 'lookup',
  lookup_ns: +(((lookupMs - fillMs) * 1e6) / FLOWS).toFixed(1),
  lookup_with_fill_ns: +((lookupMs * 1e6) / FLOWS).toFixed(1),
  fill_ns: +((fillMs * 1e6) / FLOWS).toFixed(1),
  lookups_per_s: Math.round(FLOWS / ((lookupMs - fillMs) / 1000)),
});

// Lookups on a working set that fits the caches (10,000 flows): closer to a worker's steady state.
{
  const HOT = 10_000;
  const hot = new FlowTable({ maxFlows: HOT });
  for (let i = 0; i < HOT; i++) {
    fill(pkt, i, false);
    hot.lookupOrCreate(pkt, EP_HI, epLo(i), 0);
  }
  const hotOrder = permutation(HOT, 12345);
  const ROUNDS = 100;
  let best = Infinity;
  let bestFill = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    let t = performance.now();
    let sink = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < HOT; k++) {
        const i = hotOrder[k];
        fill(pkt, i, (i & 8) !== 0);
        sink += pkt.srcPort;
      }
    }
    bestFill = Math.min(bestFill, performance.now() - t);
    t = performance.now();
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < HOT; k++) {
        const i = hotOrder[k];
        fill(pkt, i, (i & 8) !== 0);
        if (hot.lookup(pkt, EP_HI, epLo(i), 1000 + r) >= 0) sink++;
      }
    }
    best = Math.min(best, performance.now() - t);
    if (sink < 0) throw new Error('unreachable');
  }
  const n = HOT * ROUNDS;
  emit({ measure: 'lookup_10k_flows', table_flows: HOT, lookup_ns: +(((best - bestFill) * 1e6) / n).toFixed(1), lookups_per_s: Math.round(n / ((best - bestFill) / 1000)) });
}

// (3) Creates at the cap: every create evicts the least recently seen flow.
t0 = performance.now();
for (let i = FLOWS; i < 2 * FLOWS; i++) {
  fill(pkt, i, false);
  table.lookupOrCreate(pkt, EP_HI, epLo(i), 3000 + i * 0.001);
}
const evictMs = performance.now() - t0;
if (table.evictions !== FLOWS) throw new Error(`evictions ${table.evictions}`);
emit({ measure: 'create_evicting', create_ns: +((evictMs * 1e6) / FLOWS).toFixed(1), creates_per_s: Math.round(FLOWS / (evictMs / 1000)) });

// Creates into a preallocated table (no growth, no eviction).
table = null;
collect();
table = new FlowTable({ maxFlows: FLOWS, initialCapacity: FLOWS });
t0 = performance.now();
for (let i = 0; i < FLOWS; i++) {
  fill(pkt, i, false);
  table.lookupOrCreate(pkt, EP_HI, epLo(i), i * 0.001);
}
const createMs = performance.now() - t0;
emit({ measure: 'create_preallocated', create_ns: +((createMs * 1e6) / FLOWS).toFixed(1), creates_per_s: Math.round(FLOWS / (createMs / 1000)) });

// (4) The rejected design: Map keyed by a canonical template string (lower endpoint first, so symmetric).
table = null;
collect();
const mapBefore = mem();
function mapKey(p) {
  const s = p.src;
  const d = p.dst;
  const a = `${s[0]}:${s[1]}:${s[2]}:${s[3]}/${p.srcPort}`;
  const b = `${d[0]}:${d[1]}:${d[2]}:${d[3]}/${p.dstPort}`;
  return a < b ? `${p.protocol}|${a}|${b}` : `${p.protocol}|${b}|${a}`;
}
const map = new Map();
for (let i = 0; i < FLOWS; i++) {
  fill(pkt, i, false);
  map.set(mapKey(pkt), i);
}
collect();
const mapAfter = mem();
function mapLookups() {
  let hit = 0;
  const t = performance.now();
  for (let k = 0; k < FLOWS; k++) {
    const i = order[k];
    fill(pkt, i, (i & 8) !== 0);
    if (map.get(mapKey(pkt)) !== undefined) hit++;
  }
  return [performance.now() - t, hit];
}
mapLookups();
const [mapMs, hits] = mapLookups();
if (hits !== FLOWS) throw new Error(`map found ${hits}`);
emit({
  measure: 'map_template_key',
  lookup_ns: +(((mapMs - fillMs) * 1e6) / FLOWS).toFixed(1),
  lookups_per_s: Math.round(FLOWS / ((mapMs - fillMs) / 1000)),
  rss_delta_mb: +(mapAfter.rss_mb - mapBefore.rss_mb).toFixed(1),
  heap_used_delta_mb: +(mapAfter.heap_used_mb - mapBefore.heap_used_mb).toFixed(1),
  note: 'keys only (no per-flow fields or headers)',
});
