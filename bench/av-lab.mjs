// The antivirus stage in the lab (issue 10 acceptance): clean HTTP downloads THROUGH the appliance with AV on in
// block mode, as a ratio of clamd's own INSTREAM rate on the same bytes in the same run, and the latency AV adds
// to small downloads. Real namespaces (src/lab: client, gateway with the appliance, server), a real foreground
// clamd with rules/clamav, curl in the client namespace, the lab HTTP server in the server namespace.
//
//   throughput  rounds alternate (ABBA): curl downloads the object through the appliance (AV on, block mode,
//               max_object_bytes and the stream depth above the object so clamd scans all of it before the tail
//               goes), and a raw INSTREAM client (64 KiB frames, the one of bench/av.mjs) sends the same file to
//               the same clamd over the same unix socket. MB/s is MiB over curl's time_total / the raw client's
//               connect-to-verdict time. The same download with the stage scanning another port only gives the
//               lab's own ceiling (what the appliance and the namespaces carry when the flow is not inspected).
//   latency     the same appliance, its policy reloaded between AV on and a pass-all policy (rounds alternate);
//               per object size, N downloads each on a new connection (curl -w time_total, Connection: close),
//               the median per policy; added = AV on − pass-all.
//
// Run as root after `npm run build`: node bench/av-lab.mjs [--mb 50] [--rounds 3] [--small 30] (--small 0: no latency part)
// Prints one JSON line per measurement. Everything it starts (lab namespaces, clamd, appliance, servers) is stopped
// by PID / removed at the end, also on failure.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startLab } from '../dist/lab/lab.js';
import { cleanup, labNamespaces } from '../dist/lab/netns.js';
import { startLocalClamd } from '../dist/av/local-clamd.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: opt } = parseArgs({ options: { mb: { type: 'string' }, rounds: { type: 'string' }, small: { type: 'string' } } });
const MB = 1024 * 1024;
const BIG_MB = Number(opt.mb ?? 50);
const ROUNDS = Number(opt.rounds ?? 3);
const SMALL_N = Number(opt.small ?? 30);
const SMALL_SIZES = [1024, 64 * 1024];
const RAW_CHUNK_BYTES = 64 * 1024;
const SERVER4 = '10.77.2.2';
const HTTP_PORT = 8000;
/** Scanned whole: clamd's limits, max_object_bytes and the stream depth all above the object. */
const LIMIT_BYTES = Math.max(64 * MB, 2 ** Math.ceil(Math.log2(BIG_MB * MB + 1)));
const CURL_MAX_S = 300;
/** A port no download uses: the throughput reference scans only this one. */
const IDLE_PORT = 9;
/** USER_HZ of /proc/PID/stat (100 on Linux). */
const CLOCK_TICKS_PER_S = 100;

/** CPU seconds (user + system, all threads) a process has used so far; 0 once it is gone. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs) => [Math.min(...xs), Math.max(...xs)];
const r1 = (x) => Math.round(x * 10) / 10;
const r3 = (x) => Math.round(x * 1000) / 1000;
const emit = (o) => console.log(JSON.stringify(o));

/** AV on for `ports` (default every port). */
function avPolicy(ports = 'any') {
  return [
    'version: 1',
    'description: bench/av-lab.mjs, antivirus on',
    'default_action: pass',
    'settings:',
    '  stream:',
    `    depth_bytes: ${LIMIT_BYTES}`,
    'antivirus:',
    '  enabled: true',
    '  mode: block',
    `  max_object_bytes: ${LIMIT_BYTES}`,
    `  ports: ${ports}`,
    '',
  ].join('\n');
}
const PASS_POLICY = 'version: 1\ndescription: bench/av-lab.mjs, pass-all\ndefault_action: pass\n';

/**
 * The minimal INSTREAM client of bench/av.mjs: zINSTREAM, 64 KiB frames with drain, terminator, read to NUL.
 * Resolves with clamd's reply and the seconds from the flushed terminator to the reply (clamd spools the stream
 * to a file as it reads and scans it only after the end).
 */
function rawScan(path, object) {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    const parts = [];
    let endAt = 0;
    s.on('error', reject);
    s.on('data', (d) => {
      parts.push(d);
      if (d.includes(0)) {
        s.destroy();
        const all = Buffer.concat(parts);
        resolve({ verdict: all.toString('latin1', 0, all.indexOf(0)), afterEndS: (performance.now() - endAt) / 1000 });
      }
    });
    s.once('connect', async () => {
      s.write('zINSTREAM\0');
      for (let off = 0; off < object.length; off += RAW_CHUNK_BYTES) {
        const chunk = object.subarray(off, Math.min(off + RAW_CHUNK_BYTES, object.length));
        const head = Buffer.allocUnsafe(4);
        head.writeUInt32BE(chunk.length, 0);
        s.write(head);
        if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
      }
      s.write(Buffer.alloc(4), () => (endAt = performance.now()));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'gwi-bench-avlab-'));
const www = join(dir, 'www');
execFileSync('mkdir', ['-p', www]);
const bigFile = join(www, 'big.bin');
const big = randomBytes(BIG_MB * MB);
writeFileSync(bigFile, big);
for (const size of SMALL_SIZES) writeFileSync(join(www, `small${size}.bin`), randomBytes(size));
const policyFile = join(dir, 'policy.yaml');
writeFileSync(policyFile, avPolicy());

const id = `avb${process.pid.toString(36)}${randomBytes(2).toString('hex')}`.slice(0, 12);
let lab;
let clamd;
try {
  clamd = await startLocalClamd({
    dir,
    signaturesDir: join(ROOT, 'rules/clamav'),
    extraConfig: [`StreamMaxLength ${LIMIT_BYTES / MB}M`, `MaxFileSize ${LIMIT_BYTES / MB}M`, `MaxScanSize ${LIMIT_BYTES / MB}M`],
  });
  lab = await startLab({ id });
  const appliance = await lab.startAppliance({ policy: policyFile, workers: 1, extraArgs: ['--clamd', clamd.unixAddress] });
  lab.spawn('server', [process.execPath, join(ROOT, 'test/lab/fixtures/servers.mjs'), www, String(HTTP_PORT), '5353', '7000']);
  const stats = async () => JSON.parse((await lab.fetchInGateway(`${appliance.statsUrl}/stats`)).body);
  const generation = async () => Number((await stats()).policy.generation);
  const reload = async (text) => {
    const before = await generation();
    writeFileSync(policyFile, text);
    const deadline = Date.now() + 30_000;
    while (!(await stats()).workers.every((w) => Number(w.policy_generation) > before)) {
      if (Date.now() > deadline) throw new Error('policy reload not taken within 30 s');
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  /** curl in the client namespace: one time_total (s) per URL, each on its own connection; throws on a failed transfer. */
  const curlTimes = async (urls) => {
    const args = ['-sS', '--max-time', String(CURL_MAX_S), '-H', 'Connection: close', '-w', '%{http_code} %{size_download} %{time_total}\\n'];
    for (const u of urls) args.push('-o', '/dev/null', u);
    const r = await lab.exec('client', ['curl', ...args], { timeoutMs: (CURL_MAX_S + 30) * 1000 * urls.length });
    if (r.code !== 0) throw new Error(`curl exited ${r.code}: ${r.stderr}`);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => {
        const [code, bytes, secs] = l.split(' ');
        if (code !== '200') throw new Error(`curl: HTTP ${code}`);
        return { bytes: Number(bytes), secs: Number(secs) };
      });
  };
  // Wait until the server answers through the appliance (and warm up: JIT, clamd's first scans).
  for (let i = 0; ; i++) {
    try {
      await curlTimes([`http://${SERVER4}:${HTTP_PORT}/small1024.bin`]);
      break;
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // ---- throughput ----
  const through = [];
  const raw = [];
  const bigUrl = `http://${SERVER4}:${HTTP_PORT}/big.bin`;
  // The workers report stage counters every second: wait for the first report (after the warm-up's scan).
  const avCounters = async () => {
    for (let i = 0; ; i++) {
      const c = (await stats()).stages?.antivirus;
      if (c !== undefined && c.clean >= 1) return c;
      if (i > 200) throw new Error('the antivirus stage reported no counters');
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const av0 = await avCounters();
  const pass = [];
  const scanAfterEnd = [];
  /** One download through the appliance under `policy`, into `into` (MB/s). */
  // Where the time goes: CPU seconds per MiB of clamd, the appliance and the emulator during each kind of run.
  const pids = { clamd: clamd.pid, appliance: appliance.pid, emulator: lab.emulatorPid };
  const cpu = { through: [], instream: [], unscanned: [] };
  const measured = async (kind, fn) => {
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
    const t0 = performance.now();
    await fn();
    const wall = (performance.now() - t0) / 1000;
    cpu[kind].push({ wall, ...Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid) - before[k]])) });
  };
  const download = async (into) => {
    const [r] = await curlTimes([bigUrl]);
    if (r.bytes !== big.length) throw new Error(`through the appliance: ${r.bytes} of ${big.length} bytes`);
    into.push(BIG_MB / r.secs);
  };
  const runThrough = () => measured('through', () => download(through));
  const runRaw = () =>
    measured('instream', async () => {
      const t0 = performance.now();
      const { verdict, afterEndS } = await rawScan(clamd.unixAddress.slice('unix:'.length), big);
      if (verdict !== 'stream: OK') throw new Error(`raw INSTREAM: ${verdict}`);
      raw.push(BIG_MB / ((performance.now() - t0) / 1000));
      scanAfterEnd.push(afterEndS);
    });
  // The lab's own ceiling: the same download through the same appliance with the stage scanning another port only
  // (the flow is not inspected: one lookup per packet, as pass-all), so the stage and its counters live on.
  const runPass = async () => {
    await reload(avPolicy(`[${IDLE_PORT}]`));
    await measured('unscanned', () => download(pass));
    await reload(avPolicy());
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const f of round % 2 === 0 ? [runRaw, runThrough, runPass] : [runPass, runThrough, runRaw]) await f();
  }
  let av1 = await avCounters();
  for (let i = 0; av1.clean - av0.clean < ROUNDS && i < 40; i++) {
    await new Promise((r) => setTimeout(r, 50));
    av1 = await avCounters();
  }
  const scannedWhole = av1.clean - av0.clean;
  if (scannedWhole < ROUNDS) throw new Error(`only ${scannedWhole} of ${ROUNDS} downloads were scanned whole (counters ${JSON.stringify(av1)})`);
  emit({
    bench: 'av_throughput', object_mb: BIG_MB, rounds: ROUNDS, through_mbps: r1(median(through)), instream_mbps: r1(median(raw)),
    ratio: r3(median(through) / median(raw)), through_spread: spread(through).map(r1), instream_spread: spread(raw).map(r1),
    // clamd scans only after the end of the stream: a download through the appliance takes at least the transfer
    // through the lab plus this; the raw client's spool is faster than the lab's transfer.
    instream_verdict_after_end_s: r3(median(scanAfterEnd)),
    unscanned_mbps: r1(median(pass)), unscanned_spread: spread(pass).map(r1), ratio_to_unscanned: r3(median(through) / median(pass)),
    // Median share of the wall time each process was on a CPU (1 = one core busy the whole run).
    busy: Object.fromEntries(Object.entries(cpu).map(([kind, runs]) => [kind, Object.fromEntries(Object.keys(pids).map((k) => [k, r3(median(runs.map((x) => x[k] / x.wall)))]))])),
    scanned_whole: scannedWhole, not_scanned: Object.entries(av1).filter(([k]) => k.startsWith('not_scanned_')).reduce((a, [k, v]) => a + v - (av0[k] ?? 0), 0),
  });

  // ---- small-object latency: AV on vs pass-all, policies alternating by round ----
  const lat = new Map(SMALL_N > 0 ? SMALL_SIZES.map((s) => [s, { av: [], pass: [] }]) : []);
  for (let round = 0; round < ROUNDS && SMALL_N > 0; round++) {
    for (const which of round % 2 === 0 ? ['av', 'pass'] : ['pass', 'av']) {
      await reload(which === 'av' ? avPolicy() : PASS_POLICY);
      for (const size of SMALL_SIZES) {
        const times = await curlTimes(Array.from({ length: SMALL_N }, () => `http://${SERVER4}:${HTTP_PORT}/small${size}.bin`));
        for (const t of times) if (t.bytes !== size) throw new Error(`small ${size}: got ${t.bytes} bytes`);
        lat.get(size)[which].push(...times.map((t) => t.secs * 1000));
      }
    }
  }
  for (const [size, { av, pass }] of lat) {
    emit({
      bench: 'av_latency', object_bytes: size, requests: av.length, av_ms: r3(median(av)), pass_ms: r3(median(pass)), added_ms: r3(median(av) - median(pass)),
      av_p90_ms: r3([...av].sort((a, b) => a - b)[Math.floor(av.length * 0.9)]), pass_p90_ms: r3([...pass].sort((a, b) => a - b)[Math.floor(pass.length * 0.9)]),
    });
  }
  const log = readFileSync(appliance.logFile, 'utf8');
  if (log.includes('"kind":"content_finding"')) throw new Error('a clean object was reported infected');
} finally {
  await lab?.down().catch(() => undefined);
  await cleanup(labNamespaces(id).prefix).catch(() => undefined);
  await clamd?.stop().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
