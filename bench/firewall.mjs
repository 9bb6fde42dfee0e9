#!/usr/bin/env node
/**
 * Firewall new-flow decision rate at 10 and 10,000 CIDR rules: the packet path's rule index against a linear scan
 * of the same compiled rules, in the same run, on the same lookups. One JSON line per measurement.
 *
 *   npx tsc -p . && node bench/firewall.mjs [--ms 1000]
 *
 * Policies: N rules, each `proto: tcp, dst: <a distinct /24>, dst_ports: [80, 443]` (alternating drop/alert),
 * default pass; shape "mixed" puts the /24 of every other rule in `src` instead. Lookups: 4096 random TCP tuples, three quarters inside some rule's /24 (uniformly random rule
 * position: the linear scan walks half the list on average), one quarter matching nothing (the worst case for the
 * scan: every rule is tried). `stage` runs FirewallStage.onPacket for a new flow (scope choice, TCP tracker,
 * flow-table write included), with an in-memory flow table; `stage_established` is a later packet of an already
 * decided flow (cached verdict + TCP tracker), the per-packet cost on the fast path.
 */
import { performance } from 'node:perf_hooks';
import { loadPolicy, bundleReader } from '../dist/policy/load.js';
import { compilePolicy } from '../dist/policy/compile.js';
import { firstMatch, firstMatchLinear, createPacketFacts, NAME_MODE } from '../dist/firewall/evaluate.js';
import { createFlowView } from '../dist/firewall/rule-index.js';
import { FirewallStage } from '../dist/firewall/stage.js';
import { createInnerPacket } from '../dist/packet/types.js';
import { createGeneveHeader } from '../dist/geneve/types.js';

const msArg = process.argv.indexOf('--ms');
const RUN_MS = msArg > 0 ? Number(process.argv[msArg + 1]) : 1000;
const LOOKUPS = 4096;

function policyText(n, shape) {
  const lines = ['version: 1', 'default_action: pass', 'rules:'];
  for (let i = 0; i < n; i++) {
    const net = `10.${(i >> 8) & 255}.${i & 255}.0/24`;
    // 'dst': every rule constrains dst. 'mixed': odd rules constrain src instead, so no single field
    // enumerates all candidates and the lookup takes the bitset-AND path (the index's worse case).
    const field = shape === 'mixed' && i % 2 === 1 ? 'src' : 'dst';
    lines.push(`  - name: r${i}`, `    action: ${i % 2 === 0 ? 'drop' : 'alert'}`, '    proto: tcp', `    ${field}: ${net}`, '    dst_ports: [80, 443]', '    log: false');
  }
  return lines.join('\n') + '\n';
}

function compile(n, shape) {
  const t0 = performance.now();
  const r = loadPolicy('bench.yaml', bundleReader({ 'bench.yaml': policyText(n, shape) }));
  if (!r.ok) throw new Error(JSON.stringify(r.issues.slice(0, 3)));
  const c = compilePolicy(r.policy);
  if (!c.ok) throw new Error(JSON.stringify(c.issues));
  return { policy: c.policy, loadCompileMs: performance.now() - t0 };
}

/** xorshift32: reproducible lookups. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

function tuples(n) {
  const rand = rng(12345);
  const out = [];
  for (let k = 0; k < LOOKUPS; k++) {
    const v = createFlowView();
    v.proto = 6;
    v.src[2] = 0xffff;
    v.src[3] = (0xc0a80000 + Math.floor(rand() * 65536)) >>> 0; // 192.168.x.y
    v.dst[2] = 0xffff;
    if (rand() < 0.75) {
      const i = Math.floor(rand() * n);
      v.dst[3] = ((10 << 24) | (((i >> 8) & 255) << 16) | ((i & 255) << 8) | Math.floor(rand() * 256)) >>> 0;
    } else {
      v.dst[3] = ((172 << 24) | (16 << 16) | Math.floor(rand() * 65536)) >>> 0; // matches no rule
    }
    v.sport = 1024 + Math.floor(rand() * 60000);
    v.dport = rand() < 0.5 ? 443 : 80;
    out.push(v);
  }
  return out;
}

function measure(fn) {
  // Warm up, then run whole passes over the lookups until RUN_MS elapsed.
  for (let i = 0; i < 3; i++) fn();
  let passes = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < RUN_MS) {
    fn();
    passes++;
    t = performance.now();
  }
  const decisions = passes * LOOKUPS;
  return { decisions, perSec: decisions / ((t - t0) / 1000), nsPer: ((t - t0) * 1e6) / decisions };
}

class Flows {
  action = new Uint8Array(LOOKUPS);
  rule = new Int32Array(LOOKUPS);
  tcp = new Uint8Array(LOOKUPS);
  getAction(f) { return this.action[f]; }
  getRuleId(f) { return this.rule[f]; }
  setVerdict(f, a, r) { this.action[f] = a; this.rule[f] = r; }
  getTcpState(f) { return this.tcp[f]; }
  setTcpState(f, s) { this.tcp[f] = s; }
  markClosed() {}
}

for (const [n, shape] of [[10, 'dst'], [10_000, 'dst'], [10_000, 'mixed']]) {
  const { policy, loadCompileMs } = compile(n, shape);
  const scope = policy.scopes[0];
  const ts = tuples(n);
  const facts = createPacketFacts();
  facts.tcpFlags = 0x02;
  facts.nameMode = NAME_MODE.UNREADABLE_STOP;
  // Same answers from both, or the comparison means nothing.
  let sum = 0;
  for (const v of ts) {
    const a = firstMatch(policy, scope, v, 0, facts);
    const b = firstMatchLinear(policy, scope, v, 0, facts);
    if (a !== b) throw new Error(`index and linear scan disagree: ${a} vs ${b}`);
    sum += a;
  }
  const base = { bench: 'firewall.new_flow', rules: n, shape, lookups: LOOKUPS, matchRatio: 0.75, checksum: sum };
  const idx = measure(() => {
    for (let k = 0; k < LOOKUPS; k++) firstMatch(policy, scope, ts[k], 0, facts);
  });
  const lin = measure(() => {
    for (let k = 0; k < LOOKUPS; k++) firstMatchLinear(policy, scope, ts[k], 0, facts);
  });
  // Whole stage, new flows: flow k reset to "no verdict" before each pass.
  const stage = new FirewallStage(policy);
  const flows = new Flows();
  const pkt = createInnerPacket();
  pkt.ipVersion = 4;
  pkt.protocol = 6;
  pkt.l4Offset = 20;
  pkt.tcpFlags = 0x02;
  const ctx = { buf: Buffer.alloc(64), geneve: createGeneveHeader(), pkt, flow: 0, flows, direction: 0, newFlow: true, nowMs: 0, action: 1, ruleId: -1, reason: '' };
  const st = measure(() => {
    flows.action.fill(0);
    flows.tcp.fill(0);
    for (let k = 0; k < LOOKUPS; k++) {
      const v = ts[k];
      pkt.src.set(v.src);
      pkt.dst.set(v.dst);
      pkt.srcPort = v.sport;
      pkt.dstPort = v.dport;
      ctx.flow = k;
      stage.onPacket(ctx);
    }
  });
  // Established flows: every flow already decided; later packets hit the cached verdict (and the TCP tracker).
  pkt.tcpFlags = 0x10;
  for (let k = 0; k < LOOKUPS; k++) flows.tcp[k] = 3; // ESTABLISHED
  const cachedPath = measure(() => {
    for (let k = 0; k < LOOKUPS; k++) {
      ctx.flow = k;
      stage.onPacket(ctx);
    }
  });
  pkt.tcpFlags = 0x02;
  const stats = policy.stats.perScope[0];
  const out = (method, m, extra = {}) =>
    console.log(JSON.stringify({ ...base, method, decisionsPerSec: Math.round(m.perSec), nsPerDecision: Number(m.nsPer.toFixed(1)), ...extra }));
  out('index', idx, { loadCompileMs: Number(loadCompileMs.toFixed(1)), indexBytes: stats.bytes, intervals: stats.intervals, denseSets: stats.denseSets });
  out('linear', lin);
  out('stage', st);
  out('stage_established', cachedPath);
  console.log(JSON.stringify({ ...base, method: 'ratio', indexOverLinear: Number((idx.perSec / lin.perSec).toFixed(1)) }));
}
