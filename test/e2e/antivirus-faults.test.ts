/**
 * clamd faults in the lab (issue 10): clamd hanging without replying, and clamd refusing connections (a unix path
 * with no socket, a loopback port where nothing listens). For each, one appliance with --clamd pointing there,
 * first under fail open, then reloaded to fail closed: the client's download ends the configured way (intact, or
 * cut off with the flow dropped), the object is counted in /stats and logged as not scanned with its reason and
 * fail mode, and /healthz says degraded (200) under fail open and unhealthy (503) under fail closed.
 *
 * The hanging clamd is the one mock: a unix listener that reads INSTREAM and never answers. The refusing ones are
 * addresses where nothing listens. The killed-clamd case (a real clamd) is in antivirus.test.ts.
 */
import t from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, type ApplianceHandle, type Lab } from '../../src/lab/lab.js';
import { cleanup, labNamespaces } from '../../src/lab/netns.js';
import { tempDir } from '../helpers/clamd.js';
import { e2ePrerequisites, HTTP_PORT, jsonLines, randomFile, sha256File, startServers, uniqueLabId, type Json } from './fixtures/lab-helpers.js';
import { labStats, reloadPolicy, until } from './fixtures/content-helpers.js';

const SERVER4 = '10.77.2.2';
const WAIT_MS = 30_000;
const CLEAN_BYTES = 256 * 1024;
/**
 * curl's own limit. A fail-closed drop is silent (no reset), so the client ends by this; it is above the adapter's
 * reply deadline (10 s, the hanging case) so the appliance decides while the client still waits.
 */
const CURL_MAX_S = 25;
/** Nothing listens on this port in the gateway namespace (the appliance's own ports are 6081, 8080, 9090). */
const CLOSED_PORT = 3310;
const INSTREAM = Buffer.from('zINSTREAM\0', 'latin1');

function policy(mode: 'open' | 'closed'): string {
  return [
    'version: 1',
    'description: antivirus faults e2e',
    'default_action: pass',
    'antivirus:',
    '  enabled: true',
    `  on_scanner_error: ${mode}`,
    `  on_timeout: ${mode}`,
    '',
  ].join('\n');
}

/** The one mock: accepts, reads INSTREAM frames and discards them, never answers. */
function hangingClamd(path: string): Promise<{ server: Server; instreams: () => number; close: () => void }> {
  const conns = new Set<Socket>();
  let instreams = 0;
  const server = createServer((s) => {
    conns.add(s);
    let head = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      if (head.length >= INSTREAM.length) return;
      head = Buffer.concat([head, d]).subarray(0, INSTREAM.length);
      if (head.equals(INSTREAM)) instreams++;
    });
    s.on('error', () => undefined);
    s.on('close', () => conns.delete(s));
  });
  return new Promise((resolve) =>
    server.listen(path, () =>
      resolve({
        server,
        instreams: () => instreams,
        close: () => {
          for (const s of conns) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

const problems = await e2ePrerequisites(['curl']);
if (problems.length > 0) {
  t.fail(`the antivirus fault e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('avft');
  let lab: Lab | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const dir = t.testdir({ www: {}, out: {} });
  const www = join(dir, 'www');
  const policyFile = join(dir, 'policy.yaml');
  const cleanSha = sha256File(randomFile(www, 'clean.bin', CLEAN_BYTES));
  const sockets = tempDir(t, 'gwi-avft-');
  const hang = await hangingClamd(join(sockets, 'hang.sock'));
  t.teardown(() => hang.close());

  const L = (): Lab => lab as Lab;

  t.before(async () => {
    lab = await startLab({ id });
    await startServers(lab, www);
  });

  const curl = async (out: string): Promise<{ code: number; stderr: string; received: number; sha: string | null }> => {
    const file = join(dir, 'out', out);
    const r = await L().exec('client', ['curl', '-sS', '--max-time', String(CURL_MAX_S), '-o', file, `http://${SERVER4}:${HTTP_PORT}/clean.bin`], {
      timeoutMs: (CURL_MAX_S + 30) * 1000,
    });
    const received = existsSync(file) ? statSync(file).size : 0;
    const sha = existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : null;
    return { code: r.code, stderr: r.stderr, received, sha };
  };

  /**
   * /healthz until it answers `status` with body status `word`; resolves with the parsed body. Polled: the workers
   * report their stages' health every second (and right after start it is not reported yet).
   */
  const healthz = async (a: ApplianceHandle, status: number, word: string): Promise<Json> => {
    let body: Json = {};
    let last = '';
    await until(`/healthz ${status} ${word}`, WAIT_MS, async () => {
      const r = await L().fetchInGateway(`${a.adminUrl}/healthz`);
      last = `${r.status} ${r.body}`;
      if (r.status !== status) return false;
      body = JSON.parse(r.body) as Json;
      return body['status'] === word;
    }).catch((err: Error) => {
      throw new Error(`${err.message} (last: ${last})`);
    });
    return body;
  };

  const avCounters = async (a: ApplianceHandle): Promise<Record<string, number>> =>
    (((await labStats(L(), a.statsUrl))['stages'] as Json | undefined)?.['antivirus'] ?? {}) as Record<string, number>;

  /** Waits until the appliance's log has an entry matching `pick`. */
  const logged = async (a: ApplianceHandle, what: string, pick: (e: Json) => boolean): Promise<Json> => {
    let found: Json | undefined;
    await until(what, WAIT_MS, () => {
      found = jsonLines(readFileSync(a.logFile, 'utf8')).find(pick);
      return found !== undefined;
    });
    return found as Json;
  };

  const faults: { name: string; clamd: string; reason: 'timeout' | 'unreachable' }[] = [
    { name: 'clamd hanging without replying', clamd: `unix:${join(sockets, 'hang.sock')}`, reason: 'timeout' },
    { name: 'clamd refusing: a unix path with no socket', clamd: `unix:${join(sockets, 'missing.sock')}`, reason: 'unreachable' },
    { name: 'clamd refusing: a loopback port where nothing listens', clamd: `tcp:127.0.0.1:${CLOSED_PORT}`, reason: 'unreachable' },
  ];

  for (const [i, f] of faults.entries()) {
    t.test(`${f.name}: fail open passes intact and reports degraded; fail closed drops and reports unhealthy`, async (t) => {
      writeFileSync(policyFile, policy('open'));
      const a = await L().startAppliance({ policy: policyFile, workers: 1, name: `fault${i}`, extraArgs: ['--clamd', f.clamd] });
      t.teardown(async () => {
        await a.stop();
        await L().removeTarget(a.name);
      });
      const code = `av.not_scanned.${f.reason}`;
      const counter = `not_scanned_${f.reason}`;

      const degraded = await healthz(a, 200, 'degraded');
      t.match(degraded, { status: 'degraded', degraded: [/antivirus/] }, 'fail open without a scanner: healthy, degraded');
      const instreamsBefore = hang.instreams();
      const open = await curl(`open-${i}.out`);
      t.equal(open.code, 0, `fail open: the download completes ${open.stderr}`);
      t.equal(open.sha, cleanSha, 'fail open: byte-identical');
      const passed = await logged(a, 'the not-scanned anomaly (pass)', (e) => e['kind'] === 'anomaly' && e['code'] === code && e['action'] === 'pass');
      t.match(passed, { stage: 'av', reason: /to_client object not scanned.*failed open/ });
      if (f.reason === 'timeout') t.ok(hang.instreams() > instreamsBefore, 'the appliance streamed the object to the hanging clamd');
      await until('the fail-open counters', WAIT_MS, async () => {
        const c = await avCounters(a);
        return (c[counter] ?? 0) >= 1 && (c['failed_open'] ?? 0) >= 1;
      });

      await reloadPolicy(L(), a.statsUrl, policyFile, policy('closed'), WAIT_MS);
      const down = await healthz(a, 503, 'unhealthy');
      t.match(down, { status: 'unhealthy', reasons: [/antivirus/] }, 'fail closed without a scanner: unhealthy');
      const closedBefore = (await avCounters(a))['failed_closed'] ?? 0;
      const closed = await curl(`closed-${i}.out`);
      t.not(closed.code, 0, 'fail closed: the download fails');
      t.ok(closed.received < CLEAN_BYTES, `fail closed: received ${closed.received} of ${CLEAN_BYTES} bytes`);
      const dropped = await logged(a, 'the not-scanned anomaly (drop)', (e) => e['kind'] === 'anomaly' && e['code'] === code && e['action'] === 'drop');
      t.match(dropped, { stage: 'av', reason: /to_client object not scanned.*failed closed/ });
      await logged(a, 'the flow verdict', (e) => e['kind'] === 'flow_verdict' && e['reason'] === 'av.not_scanned');
      await until('the fail-closed counter', WAIT_MS, async () => ((await avCounters(a))['failed_closed'] ?? 0) > closedBefore);
    });
  }
}
