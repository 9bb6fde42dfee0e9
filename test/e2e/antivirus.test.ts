/**
 * The inline antivirus stage in the lab (issue 10): real curl in the client namespace, the lab HTTP server in the
 * server namespace, one appliance in the gateway namespace started with --clamd pointing at a real clamd
 * (test/helpers/clamd.ts; its unix socket is reachable from every namespace through the file system). Every
 * subtest asserts what the client actually received.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { startLab, type ApplianceHandle, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces } from '../../src/lab/netns.js';
import { eicarTestObject } from '../../src/av/eicar.js';
import { startTestClamd } from '../helpers/clamd.js';
import { e2ePrerequisites, HTTP_PORT, jsonLines, ROOT, randomFile, sha256File, startServers, uniqueLabId, waitForOutput, type Json } from './fixtures/lab-helpers.js';
import { CONTENT_SERVERS, contentClient, segments } from './fixtures/content-helpers.js';

const SERVER4 = '10.77.2.2';
const EICAR_SIGNATURE = 'GWI.Test.EICAR.UNOFFICIAL';
const WAIT_MS = 30_000;
const CLEAN_BYTES = 1024 * 1024;
const GZIP_PORT = 8001;
const GZIP_SERVER = join(ROOT, 'test', 'e2e', 'fixtures', 'antivirus-servers.mjs');
const UPLOAD_SERVER = CONTENT_SERVERS;
const UPLOAD_PORT = 8090;

/** Polls `probe` every 25 ms until it returns a value (not undefined), or throws after timeoutMs. */
async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}

function policy(onScannerError: 'open' | 'closed'): string {
  return [
    'version: 1',
    'description: antivirus e2e',
    'default_action: pass',
    'antivirus:',
    '  enabled: true',
    `  on_scanner_error: ${onScannerError}`,
    '',
  ].join('\n');
}

const problems = await e2ePrerequisites(['curl']);
if (problems.length > 0) {
  t.fail(`the antivirus e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('avir');
  let lab: Lab | undefined;
  let appliance: ApplianceHandle | undefined;
  let uploads: LabProcess | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const dir = t.testdir({ www: {}, out: {}, policy: {} });
  const www = join(dir, 'www');
  const policyFile = join(dir, 'policy', 'policy.yaml');
  const writePolicy = (text: string): void => {
    writeFileSync(`${policyFile}.tmp`, text);
    renameSync(`${policyFile}.tmp`, policyFile);
  };
  // EICAR after 256 KiB of clean bytes: most of the object flows before the stage can know anything.
  const eicarFile = join(www, 'eicar.bin');
  writeFileSync(eicarFile, Buffer.concat([Buffer.alloc(256 * 1024, 0x20), eicarTestObject(), Buffer.alloc(1024, 0x20)]));
  const eicarBytes = statSync(eicarFile).size;
  const cleanSha = sha256File(randomFile(www, 'clean.bin', CLEAN_BYTES));
  const big50Sha = sha256File(randomFile(www, 'big50.bin', 50 * 1024 * 1024));
  const clamd = await startTestClamd(t);

  const L = (): Lab => lab as Lab;
  const A = (): ApplianceHandle => appliance as ApplianceHandle;
  const applianceLog = (): Json[] => jsonLines(readFileSync(A().logFile, 'utf8'));

  t.before(async () => {
    writePolicy(policy('closed'));
    lab = await startLab({ id });
    appliance = await lab.startAppliance({ policy: policyFile, workers: 1, extraArgs: ['--clamd', clamd.unixAddress] });
    await startServers(lab, www);
    await waitForOutput(lab.spawn('server', [process.execPath, GZIP_SERVER, www, String(GZIP_PORT)]), /"event":"ready"/);
    uploads = lab.spawn('server', [process.execPath, UPLOAD_SERVER, '--http-only', String(UPLOAD_PORT)]);
    await waitForOutput(uploads, /"event":"ready"/);
  });

  /** What the upload server logged for `url`: complete requests and cut-off ones. */
  const uploadEvents = (url: string): Json[] => jsonLines((uploads as LabProcess).stdout()).filter((e) => e['url'] === url);
  /** content-client.py in the client namespace (raw segments after a kernel handshake, or a plain connection). */
  const py = (args: string[]): Promise<Json> => contentClient(L(), args);
  const eicarUpload = (url: string): Buffer => {
    const body = Buffer.concat([Buffer.alloc(2000, 0x2e), eicarTestObject(), Buffer.alloc(100, 0x2e)]);
    return Buffer.concat([Buffer.from(`POST ${url} HTTP/1.1\r\nHost: lab\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  };

  const curl = async (name: string, out: string, port = HTTP_PORT): Promise<{ code: number; stderr: string; received: number; sha: string | null }> => {
    const file = join(dir, 'out', out);
    const r = await L().exec('client', ['curl', '-sS', '--max-time', '20', '-o', file, `http://${SERVER4}:${port}/${name}`], { timeoutMs: 60_000 });
    const received = existsSync(file) ? statSync(file).size : 0;
    const sha = existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : null;
    return { code: r.code, stderr: r.stderr, received, sha };
  };

  t.test('an EICAR download never arrives whole: the connection is reset and the finding names the signature', async (t) => {
    const r = await curl('eicar.bin', 'eicar.out');
    t.not(r.code, 0, 'curl fails');
    t.ok(r.received < eicarBytes, `received ${r.received} of ${eicarBytes} bytes`);
    t.match(r.stderr, /reset|Recv failure/i, 'reset, not a timeout');
    const finding = await waitUntil('the content_finding', WAIT_MS, () => applianceLog().find((e) => e['kind'] === 'content_finding'));
    t.match(finding, { stage: 'av', action: 'reject', signature: EICAR_SIGNATURE, reason: 'av.infected', direction: 'to_client' });
  });

  t.test('a gzip-encoded, chunked EICAR download never arrives whole', async (t) => {
    const gzBytes = gzipSync(readFileSync(eicarFile)).length;
    const before = applianceLog().filter((e) => e['kind'] === 'content_finding').length;
    const r = await curl('eicar.bin', 'eicar-gz.out', GZIP_PORT);
    t.not(r.code, 0, 'curl fails');
    t.ok(r.received < gzBytes, `received ${r.received} of ${gzBytes} compressed bytes`);
    t.match(r.stderr, /reset|Recv failure/i);
    const finding = await waitUntil('the content_finding', WAIT_MS, () => applianceLog().filter((e) => e['kind'] === 'content_finding')[before]);
    t.match(finding, { action: 'reject', signature: EICAR_SIGNATURE, dstPort: GZIP_PORT });
  });

  t.test('an infected upload (PUT) is blocked the same way: the server never stores it whole', async (t) => {
    const before = applianceLog().filter((e) => e['kind'] === 'content_finding').length;
    const r = await L().exec('client', ['curl', '-sS', '--max-time', '20', '-T', eicarFile, `http://${SERVER4}:${HTTP_PORT}/up-eicar.bin`], { timeoutMs: 60_000 });
    t.not(r.code, 0, 'curl fails');
    const stored = join(www, 'up-eicar.bin');
    const storedBytes = existsSync(stored) ? statSync(stored).size : 0;
    t.ok(storedBytes < eicarBytes, `the server stored ${storedBytes} of ${eicarBytes} bytes`);
    const finding = await waitUntil('the content_finding', WAIT_MS, () => applianceLog().filter((e) => e['kind'] === 'content_finding')[before]);
    t.match(finding, { action: 'reject', signature: EICAR_SIGNATURE, direction: 'to_server' });
  });

  t.test('a clean 50 MB download passes intact; past the stream depth it is logged as not scanned, failed open', async (t) => {
    const r = await curl('big50.bin', 'big50.out');
    t.equal(r.code, 0, r.stderr);
    t.equal(r.sha, big50Sha, 'byte-identical');
    const logged = await waitUntil('the not-scanned anomaly', WAIT_MS, () =>
      applianceLog().find((e) => e['kind'] === 'anomaly' && e['code'] === 'av.not_scanned.size_limit'),
    );
    t.match(logged, { stage: 'av', action: 'pass', reason: /failed open/ });
  });

  t.test('a clean 1 MB download passes byte-identical', async (t) => {
    const r = await curl('clean.bin', 'clean.out');
    t.equal(r.code, 0, r.stderr);
    t.equal(r.sha, cleanSha);
  });

  t.test('an EICAR upload cut into 1-byte segments, and one sent in reversed 7-byte segments, never arrives whole', async (t) => {
    const before = applianceLog().filter((e) => e['kind'] === 'content_finding').length;
    for (const [url, plan] of [
      ['/eicar-1byte', segments(eicarUpload('/eicar-1byte'), 1)],
      ['/eicar-reversed', segments(eicarUpload('/eicar-reversed'), 7).reverse()],
    ] as const) {
      await py(['raw', SERVER4, String(UPLOAD_PORT), JSON.stringify(plan)]);
      // A clean request on a new connection: once answered, what the raw segments could deliver has arrived.
      const ok = await py(['http', SERVER4, String(UPLOAD_PORT), Buffer.from(`GET /after${url} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n`).toString('hex')]);
      t.equal(ok['event'], 'answer', `the control request went through: ${JSON.stringify(ok)}`);
      t.same(uploadEvents(url).filter((e) => e['event'] === 'request'), [], `${url}: the object never arrived whole`);
      // What the stage holds is the tail (the packet completing the object): with 1-byte segments that is one byte.
      t.ok(uploadEvents(url).every((e) => e['event'] === 'partial'), `${url}: at most a cut-off object reached the server`);
    }
    const findings = await waitUntil('two more content_findings', WAIT_MS, () => {
      const f = applianceLog().filter((e) => e['kind'] === 'content_finding').slice(before);
      return f.length >= 2 ? f : undefined;
    });
    for (const f of findings) t.match(f, { action: 'reject', signature: EICAR_SIGNATURE, direction: 'to_server', dstPort: UPLOAD_PORT });
  });

  t.test('clamd killed: fail closed blocks, fail open passes; the log says not scanned', async (t) => {
    await clamd.stop('SIGKILL');
    const closed = await curl('clean.bin', 'closed.out');
    t.not(closed.code, 0, 'fail closed: curl fails');
    t.ok(closed.received < CLEAN_BYTES, `received ${closed.received} of ${CLEAN_BYTES} bytes`);
    const dropped = await waitUntil('the not-scanned anomaly (drop)', WAIT_MS, () =>
      applianceLog().find((e) => e['kind'] === 'anomaly' && e['code'] === 'av.not_scanned.unreachable' && e['action'] === 'drop'),
    );
    t.match(dropped, { stage: 'av', reason: /failed closed/ });

    const before = applianceLog().filter((e) => e['msg'] === 'policy_reloaded').length;
    writePolicy(policy('open'));
    await waitUntil('the reload', WAIT_MS, () => (applianceLog().filter((e) => e['msg'] === 'policy_reloaded').length > before ? true : undefined));
    const open = await curl('clean.bin', 'open.out');
    t.equal(open.code, 0, `fail open: the download completes ${open.stderr}`);
    t.equal(open.sha, cleanSha, 'byte-identical');
    const passed = await waitUntil('the not-scanned anomaly (pass)', WAIT_MS, () =>
      applianceLog().find((e) => e['kind'] === 'anomaly' && e['code'] === 'av.not_scanned.unreachable' && e['action'] === 'pass'),
    );
    t.match(passed, { stage: 'av', reason: /failed open/ });
  });
}
