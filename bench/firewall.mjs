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
 *
 * Server names (bench: 'firewall.names'): a policy with an `sni` rule and an `http_host` rule, real packets
 * decoded by the real decoder. `tls_new_flow` is a whole new flow (SYN, SYN-ACK, ACK, then a real ClientHello
 * captured from node:tls, read from the client's stream and decided); `tls_split_new_flow` the same with the
 * ClientHello in two segments, the second sent first (out of order); `http_keepalive` the per-packet cost on a
 * passed HTTP connection whose every request is read: a request head with a 4 KiB Content-Length body in 1448-byte
 * segments, repeated.
 */
import { performance } from 'node:perf_hooks';
import { loadPolicy, bundleReader } from '../dist/policy/load.js';
import { compilePolicy } from '../dist/policy/compile.js';
import { firstMatch, firstMatchLinear, createPacketFacts, NAME_MODE } from '../dist/firewall/evaluate.js';
import { createFlowView } from '../dist/match/rule-index.js';
import { FirewallStage } from '../dist/firewall/stage.js';
import { createInnerPacket } from '../dist/packet/types.js';
import { createGeneveHeader } from '../dist/geneve/types.js';
import { buildTcp } from '../dist/packet/build.js';
import { decodeInner, INNER_PROTOCOL_ANY } from '../dist/packet/decode.js';
import { createServer } from 'node:net';
import { connect } from 'node:tls';
import { rng } from './corpus.mjs';

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

// ---- server names -------------------------------------------------------------------------------------------

/** The first TLS record of a real handshake (node:tls to a loopback server that never answers). */
async function captureClientHello(servername) {
  const server = createServer();
  const got = new Promise((resolve) => {
    server.once('connection', (sock) => {
      let all = Buffer.alloc(0);
      sock.on('data', (d) => {
        all = Buffer.concat([all, d]);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          resolve(all.subarray(0, 5 + all.readUInt16BE(3)));
          sock.destroy();
        }
      });
      sock.on('error', () => {});
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const client = connect({ host: '127.0.0.1', port: server.address().port, servername, rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

const NAMES_POLICY = `version: 1
default_action: drop
rules:
  - name: https-allowed
    action: pass
    proto: tcp
    dst_ports: 443
    sni: [good.example, "*.good.example"]
    log: false
  - name: http-allowed
    action: pass
    proto: tcp
    dst_ports: 80
    http_host: [good.example]
    log: false
`;

{
  const loaded = loadPolicy('names.yaml', bundleReader({ 'names.yaml': NAMES_POLICY }));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  const compiled = compilePolicy(loaded.policy);
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.issues));
  const hello = await captureClientHello('good.example');
  const C = '10.0.0.5';
  const S = '93.184.216.34';
  const pkt = createInnerPacket();
  /** A decoded packet: its buffer and the decoded fields to restore before each send. */
  const make = (o, dir) => {
    const buf = buildTcp(o);
    const p = createInnerPacket();
    if (decodeInner(buf, 0, buf.length, INNER_PROTOCOL_ANY, p) !== 0) throw new Error('bench packet does not decode');
    return { buf, p, dir };
  };
  const load = (ctx, m) => {
    Object.assign(pkt, m.p);
    pkt.src.set(m.p.src);
    pkt.dst.set(m.p.dst);
    ctx.buf = m.buf;
    ctx.direction = m.dir;
  };
  const NAME_FLOWS = 1024;
  const run = (method, packets, flowsPerPass, perPass, expect) => {
    const stage = new FirewallStage(compiled.policy);
    const flows = new Flows();
    const ctx = { buf: Buffer.alloc(0), geneve: createGeneveHeader(), pkt, flow: 0, flows, direction: 0, newFlow: true, nowMs: 0, action: 1, ruleId: -1, reason: '' };
    const pass = () => {
      for (let k = 0; k < flowsPerPass; k++) {
        ctx.flow = k;
        for (const m of packets.perFlow) {
          load(ctx, m);
          stage.onPacket(ctx);
        }
      }
      for (const m of packets.repeat ?? []) {
        load(ctx, m);
        stage.onPacket(ctx);
      }
    };
    // Warm-up pass, and the outcome check: the comparison means nothing if the flows were not decided as expected.
    const reset = () => {
      for (let k = 0; k < flowsPerPass; k++) stage.onFlowEnd(k);
      flows.action.fill(0);
      flows.tcp.fill(0);
    };
    reset();
    pass();
    if (flows.action[0] !== expect || stage.counters.namesRead === 0) throw new Error(`${method}: flow 0 action ${flows.action[0]}, names read ${stage.counters.namesRead}`);
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < RUN_MS) {
      if (packets.repeat === undefined) reset();
      pass();
      n += perPass;
      t = performance.now();
    }
    console.log(JSON.stringify({ bench: 'firewall.names', method, perSec: Math.round(n / ((t - t0) / 1000)), nsPer: Number((((t - t0) * 1e6) / n).toFixed(1)), unit: packets.repeat === undefined ? 'flow' : 'packet' }));
  };
  const hs = (dport) => [
    make({ src: C, dst: S, srcPort: 40000, dstPort: dport, flags: 0x02, seq: 1000 }, 0),
    make({ src: S, dst: C, srcPort: dport, dstPort: 40000, flags: 0x12, seq: 5000, ack: 1001 }, 1),
    make({ src: C, dst: S, srcPort: 40000, dstPort: dport, flags: 0x10, seq: 1001, ack: 5001 }, 0),
  ];
  const data = (dport, seq, payload) => make({ src: C, dst: S, srcPort: 40000, dstPort: dport, flags: 0x18, seq, ack: 5001, payload }, 0);
  run('tls_new_flow', { perFlow: [...hs(443), data(443, 1001, hello)] }, NAME_FLOWS, NAME_FLOWS, 1);
  const cut = hello.length >> 1;
  run('tls_split_new_flow', { perFlow: [...hs(443), data(443, 1001 + cut, hello.subarray(cut)), data(443, 1001, hello.subarray(0, cut))] }, NAME_FLOWS, NAME_FLOWS, 1);
  // One passed HTTP connection: the first request opens it; then head + 4 KiB body, repeated.
  const BODY = 4096;
  const SEG = 1448;
  const head = Buffer.from(`POST /up HTTP/1.1\r\nHost: good.example\r\nContent-Length: ${BODY}\r\n\r\n`);
  const rep = [];
  let seq = 1001 + head.length + BODY;
  const body = Buffer.alloc(BODY, 0x61);
  // 64 requests per pass, sequence numbers laid out in order across passes would wrap; each pass restarts at the
  // same sequence numbers, so the flow is re-opened per pass by the perFlow packets below.
  const REQS = 64;
  for (let r = 0; r < REQS; r++) {
    rep.push(data(80, seq, head));
    seq += head.length;
    for (let o = 0; o < BODY; o += SEG) {
      rep.push(data(80, seq, body.subarray(o, Math.min(BODY, o + SEG))));
      seq += Math.min(SEG, BODY - o);
    }
  }
  const first = [...hs(80), data(80, 1001, Buffer.concat([head, body]))];
  {
    const stage = new FirewallStage(compiled.policy);
    const flows = new Flows();
    const ctx = { buf: Buffer.alloc(0), geneve: createGeneveHeader(), pkt, flow: 0, flows, direction: 0, newFlow: true, nowMs: 0, action: 1, ruleId: -1, reason: '' };
    const openConn = () => {
      stage.onFlowEnd(0);
      flows.action[0] = 0;
      flows.tcp[0] = 0;
      for (const m of first) {
        load(ctx, m);
        stage.onPacket(ctx);
      }
    };
    const pass = () => {
      openConn();
      for (const m of rep) {
        load(ctx, m);
        if (stage.onPacket(ctx) !== 0) throw new Error('http_keepalive: a request was not passed');
      }
    };
    pass();
    const checked = stage.counters.requestsChecked;
    if (checked !== REQS) throw new Error(`http_keepalive: ${checked} requests checked, expected ${REQS}`);
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < RUN_MS) {
      pass();
      n += rep.length + first.length;
      t = performance.now();
    }
    console.log(JSON.stringify({ bench: 'firewall.names', method: 'http_keepalive', perSec: Math.round(n / ((t - t0) / 1000)), nsPer: Number((((t - t0) * 1e6) / n).toFixed(1)), unit: 'packet' }));
  }
}
