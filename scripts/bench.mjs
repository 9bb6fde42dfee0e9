#!/usr/bin/env node
// `npm run bench`: side-by-side measurements on this machine. Prints one JSON line per measurement and a summary
// table; writes nothing tracked. `npm run bench -- --out FILE` also writes every result as one JSON document, from
// which `node scripts/bench-doc.mjs FILE` regenerates docs/benchmarks.md (so a figure in the docs is one printed here).
//
// Method (the same for every comparison): the C load generator (bench/c/loadgen.c) plays GWLB from 127.0.0.2 on its
// own core; the two things compared (the appliance and the C recvmmsg/sendmmsg reflector, or the appliance with and
// without rules) each get the same other core, in rounds that alternate between them; figures are medians, with the
// spread (min..max) of the rounds. Every run has a fixed duration; every process started here is stopped by PID.
//
// Options (flags or env): --rounds N (BENCH_ROUNDS, 3), --duration S (BENCH_DURATION_S, 3), --only a,b (sections:
// passthrough, firewall, loss, memory, content, av, components), --out FILE.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { cpus, release, totalmem, tmpdir } from 'node:os';
import { existsSync, writeFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bench/bin');
const { values: opt } = parseArgs({
  options: { rounds: { type: 'string' }, duration: { type: 'string' }, only: { type: 'string' }, out: { type: 'string' } },
});
const ROUNDS = Number(opt.rounds ?? process.env.BENCH_ROUNDS ?? 3);
const DURATION_S = Number(opt.duration ?? process.env.BENCH_DURATION_S ?? 3);
const SECTIONS = new Set((opt.only ?? 'passthrough,firewall,loss,memory,content,av,components').split(','));
/** The target (appliance or reflector) runs on TARGET_CPU, the load generator on GEN_CPU. */
const TARGET_CPU = '0';
const GEN_CPU = '1';
const FLOWS = 4096;
const SIZES = [64, 1400];
const RULE_COUNTS = [10, 1000, 10_000];
/** Offered new-connection rates (TCP SYNs of never-seen flows per second). */
const NEW_FLOW_RATES = [10_000, 100_000];
const MEMORY_FLOWS = 1_000_000;
const GEN_ADDR = '127.0.0.2';
const TARGET_ADDR = '127.0.0.1';
const TMP = mkdtempSync(join(tmpdir(), 'gwi-bench-'));
process.on('exit', () => rmSync(TMP, { recursive: true, force: true }));
const PASS_POLICY = join(TMP, 'pass.yaml');
writeFileSync(PASS_POLICY, 'version: 1\ndefault_action: pass\n');

/**
 * N TCP drop rules (the protocol of the traffic) that the generated flows (10.0/10 → 10.64/10) never match, then
 * default pass: each new flow consults the indexed rule set and falls through to the default.
 */
function rulesPolicy(n) {
  const file = join(TMP, `rules-${n}.yaml`);
  const rules = Array.from({ length: n }, (_, i) => `  - { name: r${i}, action: drop, proto: tcp, dst: 172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32, dst_ports: ${1 + (i % 60000)} }`);
  writeFileSync(file, `version: 1\ndefault_action: pass\nrules:\n${rules.join('\n')}\n`);
  return file;
}

execFileSync('make', ['-s', '-C', join(ROOT, 'bench/c')], { stdio: 'inherit' });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs) => [Math.min(...xs), Math.max(...xs)];
const round3 = (x) => Math.round(x * 1000) / 1000;
let nextPort = 30000 + Math.floor(Math.random() * 20000);
const results = [];
function emit(r) {
  results.push(r);
  console.log(JSON.stringify(r));
}

function runJson(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || line === undefined) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`));
      else resolve(JSON.parse(line));
    });
  });
}

async function stop(proc) {
  if (proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await once(proc, 'exit');
  clearTimeout(t);
}

async function startReflector(port) {
  const p = spawn('taskset', ['-c', TARGET_CPU, join(BIN, 'reflector'), TARGET_ADDR, String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  await sleep(200);
  return p;
}

/** The appliance, one worker, pinned with all its threads to TARGET_CPU; resolves once it logged "started". */
async function startAppliance(port, policy = PASS_POLICY, extra = []) {
  const args = ['-c', TARGET_CPU, process.execPath, join(ROOT, 'dist/cli/main.js'), 'run', '--listen', TARGET_ADDR, '--port', String(port),
    '--admin-listen', '127.0.0.1:0', '--stats-listen', '127.0.0.1:0', '--workers', '1', '--log-level', 'info', '--policy', policy, ...extra];
  const p = spawn('taskset', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const started = new Promise((resolve, reject) => {
    p.stderr.on('data', (d) => {
      err += d;
      for (const line of err.split('\n')) {
        if (!line.includes('"msg":"started"')) continue;
        const rec = JSON.parse(line);
        resolve(rec.stats ?? rec.admin);
      }
    });
    p.on('exit', (code) => reject(new Error(`appliance exited ${code}: ${err}`)));
  });
  p.admin = await started;
  return p;
}

async function stats(p) {
  const res = await fetch(`http://${p.admin}/stats`);
  return res.json();
}

function rssMb(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m === null ? NaN : Number(m[1]) / 1024;
}

/** newFlows: the number of the first never-seen flow to open (every datagram a new flow), or false. */
function loadgen(port, { size = 64, rate = 0, duration = DURATION_S, proto = 'udp', newFlows = false, flows = FLOWS } = {}) {
  return runJson('taskset', ['-c', GEN_CPU, join(BIN, 'loadgen'), '--target', `${TARGET_ADDR}:${port}`, '--bind', GEN_ADDR,
    '--flows', String(flows), '--size', String(size), '--rate', String(rate), '--duration', String(duration), '--proto', proto,
    ...(newFlows === false ? [] : ['--new-flows', '--first-flow', String(newFlows)])]);
}

// ---- pass-through: appliance (1 worker, pass-all) vs the C reflector, same core ----------------------------------
if (SECTIONS.has('passthrough')) {
  for (const size of SIZES) {
    const refl = [];
    const app = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which one goes first, so neither always runs on a warmer (or busier) machine.
      for (const which of round % 2 === 0 ? ['reflector', 'appliance'] : ['appliance', 'reflector']) {
        const port = nextPort++;
        if (which === 'reflector') {
          const r = await startReflector(port);
          refl.push((await loadgen(port, { size })).recv_pps);
          await stop(r);
        } else {
          const a = await startAppliance(port);
          await loadgen(port, { size, duration: 1 }); // warm-up (JIT, flow creation), not measured
          app.push((await loadgen(port, { size })).recv_pps);
          await stop(a);
        }
      }
    }
    emit({
      bench: 'passthrough', size, rounds: ROUNDS, reflector_pps: median(refl), appliance_pps: median(app), ratio: round3(median(app) / median(refl)),
      reflector_spread: spread(refl), appliance_spread: spread(app),
    });
  }
}

// ---- firewall: N TCP rules vs no rules, established flows and new connections -------------------------------------
if (SECTIONS.has('firewall')) {
  const policies = [{ rules: 0, file: PASS_POLICY }, ...RULE_COUNTS.map((n) => ({ rules: n, file: rulesPolicy(n) }))];
  const loads = [
    { load: 'established', opts: { proto: 'tcp', size: 64 } },
    // Each new-connection load opens flows that neither the established load (flows 0..FLOWS-1) nor an earlier
    // new-connection load of the same appliance opened.
    ...NEW_FLOW_RATES.map((rate, i) => ({ load: `new_flows_${rate}`, offered: rate, opts: { proto: 'tcp', size: 40, newFlows: FLOWS + i * 2 ** 21, rate } })),
  ];
  const samples = new Map(); // `${rules}/${load}` -> recv_pps[]
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? policies : [...policies].reverse();
    for (const pol of order) {
      const port = nextPort++;
      const a = await startAppliance(port, pol.file);
      await loadgen(port, { proto: 'tcp', size: 64, duration: 1 }); // warm-up on the established flows
      for (const l of loads) {
        const r = await loadgen(port, l.opts);
        const key = `${pol.rules}/${l.load}`;
        samples.set(key, [...(samples.get(key) ?? []), r.recv_pps]);
      }
      await stop(a);
    }
  }
  for (const l of loads) {
    const base = samples.get(`0/${l.load}`);
    for (const n of RULE_COUNTS) {
      const fw = samples.get(`${n}/${l.load}`);
      emit({
        bench: 'firewall', load: l.load, ...(l.offered ? { offered_pps: l.offered } : {}), rules: n, rounds: ROUNDS,
        no_rules_pps: median(base), rules_pps: median(fw), ratio: round3(median(fw) / median(base)), no_rules_spread: spread(base), rules_spread: spread(fw),
      });
    }
  }
}

// ---- below saturation: nothing may be lost --------------------------------------------------------------------------
if (SECTIONS.has('loss')) {
  const port = nextPort++;
  const a = await startAppliance(port);
  await loadgen(port, { duration: 1 });
  const max = (await loadgen(port)).recv_pps;
  const rate = Math.round((max * 0.5) / 1000) * 1000;
  const r = await loadgen(port, { rate, duration: 5 });
  await stop(a);
  emit({ bench: 'no_loss', rate_pps: rate, sent: r.sent, received: r.received, loss_ratio: r.loss_ratio });
}

// ---- memory: 1,000,000 concurrent flows in the running appliance -------------------------------------------------
if (SECTIONS.has('memory')) {
  const port = nextPort++;
  const a = await startAppliance(port, PASS_POLICY, ['--max-flows', String(MEMORY_FLOWS)]);
  await sleep(1000);
  const idle = rssMb(a.pid);
  let created = 0;
  let offered = 0;
  // New UDP flows, paced below what one worker takes, until the table holds MEMORY_FLOWS (bounded: 10 rounds).
  for (let i = 0; i < 10 && created < MEMORY_FLOWS; i++) {
    const r = await loadgen(port, { size: 28, newFlows: offered, rate: 150_000, duration: Math.min(4, (MEMORY_FLOWS - created) / 150_000 + 0.2) });
    offered += r.sent;
    created = (await stats(a)).flows_active;
  }
  // The appliance process (main thread + worker): the taskset wrapper execs node, so a.pid is node's pid.
  const full = rssMb(a.pid);
  await stop(a);
  emit({ bench: 'memory', flows_active: created, rss_idle_mb: round3(idle), rss_mb: round3(full), rss_growth_mb: round3(full - idle), bytes_per_flow: Math.round(((full - idle) * 2 ** 20) / created) });
}

// ---- component benches (one process each) ---------------------------------------------------------------------
// ---- content chain: a 100 MiB upload through the engine, in-process, pinned to the target core ------------------
if (SECTIONS.has('content')) {
  const p = spawn('taskset', ['-c', TARGET_CPU, process.execPath, join(ROOT, 'bench/content.mjs'), '--mb', '100', '--rounds', String(ROUNDS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  await once(p, 'exit');
  for (const l of out.trim().split('\n').filter((x) => x.startsWith('{'))) emit(JSON.parse(l));
}

// ---- antivirus in the lab: downloads through the appliance vs clamd's own INSTREAM rate, small-object latency ----
// Real namespaces, clamd and curl (bench/av-lab.mjs, root); not pinned: the lab's processes share both cores.
if (SECTIONS.has('av')) {
  const p = spawn(process.execPath, [join(ROOT, 'bench/av-lab.mjs'), '--rounds', String(ROUNDS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  const [code] = await once(p, 'exit');
  for (const l of out.trim().split('\n').filter((x) => x.startsWith('{'))) emit(JSON.parse(l));
  // The other sections' results are kept: a machine without clamd or root loses only this one.
  if (code !== 0) console.error(`bench/av-lab.mjs exited ${code}: the av section is incomplete`);
}

if (SECTIONS.has('components')) {
  for (const file of ['bench/flow-table.mjs', 'bench/firewall.mjs']) {
    if (!existsSync(join(ROOT, file))) continue;
    const p = spawn(process.execPath, ['--expose-gc', join(ROOT, file)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    await once(p, 'exit');
    for (const l of out.trim().split('\n').filter((x) => x.startsWith('{'))) emit({ component: file, ...JSON.parse(l) });
  }
}

// ---- summary ------------------------------------------------------------------------------------------------------
const pct = (x) => `${(x * 100).toFixed(0)} %`;
const rows = [];
for (const r of results) {
  if (r.bench === 'passthrough') rows.push([`pass-through ${r.size} B: appliance / C reflector`, pct(r.ratio), `${Math.round(r.appliance_pps)} / ${Math.round(r.reflector_pps)} pps`]);
  if (r.bench === 'firewall') rows.push([`firewall ${r.load}, ${r.rules} rules / no rules`, pct(r.ratio), `${Math.round(r.rules_pps)} / ${Math.round(r.no_rules_pps)} pps`]);
  if (r.bench === 'no_loss') rows.push([`no loss at ${r.rate_pps} pps`, `${r.received}/${r.sent}`, `loss ${r.loss_ratio}`]);
  if (r.bench === 'content') rows.push([`content chain, ${r.config} / none (${r.payload_mb} MB upload)`, pct(r.ratio_to_none), `${r.mbps} MB/s`]);
  if (r.bench === 'av_throughput') rows.push([`AV downloads through the appliance / clamd INSTREAM (${r.object_mb} MB)`, pct(r.ratio), `${r.through_mbps} / ${r.instream_mbps} MB/s`]);
  if (r.bench === 'av_latency') rows.push([`AV added latency, ${r.object_bytes} B download`, `${r.added_ms} ms`, `${r.av_ms} / ${r.pass_ms} ms median`]);
  if (r.bench === 'memory') rows.push([`memory: ${r.flows_active} flows`, `+${r.rss_growth_mb.toFixed(0)} MB`, `${r.bytes_per_flow} B/flow`]);
}
const w = Math.max(...rows.map((r) => r[0].length), 10);
console.error(rows.map((r) => `${r[0].padEnd(w)}  ${r[1].padStart(8)}  ${r[2]}`).join('\n'));

if (opt.out !== undefined) {
  const doc = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memGiB: Math.round(totalmem() / 2 ** 30), kernel: release() },
    node: process.version,
    method: { rounds: ROUNDS, durationS: DURATION_S, flows: FLOWS, targetCpu: TARGET_CPU, generatorCpu: GEN_CPU },
    results,
  };
  writeFileSync(opt.out, JSON.stringify(doc, null, 2) + '\n');
  console.error(`wrote ${opt.out}; regenerate the docs with: node scripts/bench-doc.mjs ${opt.out}`);
}
