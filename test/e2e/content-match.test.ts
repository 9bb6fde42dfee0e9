/**
 * The content-chain contract through the lab (docs/architecture.md §3.2), with the test stage in match mode (it
 * decides as soon as the decoded stream carries the marker, as DLP does): real kernel TCP and raw segments from the
 * client namespace (test/e2e/fixtures/content-client.py), the real appliance, and what the server namespace
 * actually received (test/e2e/fixtures/content-servers.mjs). The marker must never reach the server, however the
 * bytes are cut, ordered, repeated or encoded; clean traffic must arrive intact.
 */
import t from 'tap';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { startLab, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces, LAB_ADDR } from '../../src/lab/netns.js';
import { ROOT, e2ePrerequisites, jsonLines, uniqueLabId, waitForOutput, type Json } from './fixtures/lab-helpers.js';
import { CONTENT_SERVERS, contentClient, labStats, post, segments, until as untilTrue } from './fixtures/content-helpers.js';

const FIXTURES = join(ROOT, 'test', 'e2e', 'fixtures');
const POLICY = join(FIXTURES, 'content-match-policy.yaml');
const SERVERS = CONTENT_SERVERS;
const SERVER4 = LAB_ADDR.server4;
const MARKER = 'X-EVIL-MARKER-7';
const WAIT_MS = 15_000;

const problems = await e2ePrerequisites(['python3']);
if (problems.length > 0) {
  t.fail(`the content-chain e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('cmat');
  let lab: Lab | undefined;
  let servers: LabProcess | undefined;
  let statsUrl = '';
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const L = (): Lab => lab as Lab;

  t.before(async () => {
    lab = await startLab({ id });
    const a = await lab.startAppliance({ policy: POLICY, workers: 2, extraArgs: ['--enable-test-stages', 'true'] });
    statsUrl = a.statsUrl;
    servers = lab.spawn('server', [process.execPath, SERVERS]);
    await waitForOutput(servers, /"event":"ready"/);
  });

  const events = (kind: string): Json[] => jsonLines((servers as LabProcess).stdout()).filter((e) => e['event'] === kind);
  /** What the server received for `url` (complete or cut-off requests), or on raw streams (url null). */
  const received = (url: string | null): string =>
    jsonLines((servers as LabProcess).stdout())
      .filter((e) => (url === null ? e['event'] === 'stream' : e['url'] === url))
      .map((e) => String(e['body'] ?? ''))
      .join('\n');
  const until = (what: string, probe: () => boolean | Promise<boolean>): Promise<void> => untilTrue(what, WAIT_MS, probe);
  const py = (args: string[]): Promise<Json> => contentClient(L(), args);
  const stats = (): Promise<Json> => labStats(L(), statsUrl);
  /** A clean request on a new connection, answered: everything sent before it on other connections has settled. */
  let controls = 0;
  const control = async (): Promise<void> => {
    controls++;
    const url = `/control-${controls}`;
    const r = await py(['http', SERVER4, '8080', Buffer.from(`GET ${url} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n`).toString('hex')]);
    if (r['event'] !== 'answer') throw new Error(`the control request failed: ${JSON.stringify(r)}`);
    await until('the control request', () => events('request').some((e) => e['url'] === url));
  };

  t.test('clean traffic arrives byte for byte (the control for everything below)', async (t) => {
    const body = Buffer.from('a perfectly ordinary body, nothing to see here\n'.repeat(200));
    const r = await py(['http', SERVER4, '8080', post('/clean', body).toString('hex')]);
    t.equal(r['event'], 'answer', JSON.stringify(r));
    await until('the clean request', () => events('request').some((e) => e['url'] === '/clean'));
    const got = events('request').find((e) => e['url'] === '/clean') as Json;
    t.equal(got['sha256'], createHash('sha256').update(body).digest('hex'), 'the server got exactly the body sent');
  });

  t.test('the marker in a body sent as 1-byte segments never reaches the server', async (t) => {
    const req = post('/one-byte', Buffer.from(`prefix ${MARKER} suffix`));
    await py(['raw', SERVER4, '8080', JSON.stringify(segments(req, 1))]);
    await control();
    t.notOk(received('/one-byte').includes(MARKER), 'no byte sequence the server logged contains the marker');
    t.notOk(events('request').some((e) => e['url'] === '/one-byte'), 'the request never completed at the server');
  });

  t.test('reordered segments: the marker split across segments sent in reverse order never arrives', async (t) => {
    const req = post('/reordered', Buffer.from(`0123456789 ${MARKER} 9876543210`));
    await py(['raw', SERVER4, '8080', JSON.stringify(segments(req, 5).reverse())]);
    await control();
    t.notOk(received('/reordered').includes(MARKER));
    t.notOk(events('request').some((e) => e['url'] === '/reordered'));
  });

  t.test('retransmission with other bytes: a benign first copy, then the marker at the same offsets', async (t) => {
    const benign = post('/retransmit', Buffer.from(`xxxxxxxxxxxxxxxxxxxxxxxx`));
    const evil = post('/retransmit', Buffer.from(`xxxx${MARKER}xxxxx`));
    const head = benign.length - 24;
    // The body first out of order (after a hole), benign; then the same offsets with the marker; then the head.
    const plan: [number, string][] = [
      [head, benign.subarray(head).toString('hex')],
      [head, evil.subarray(head).toString('hex')],
      [0, benign.subarray(0, head).toString('hex')],
    ];
    await py(['raw', SERVER4, '8080', JSON.stringify(plan)]);
    await control();
    t.notOk(received('/retransmit').includes(MARKER), 'the server never saw the marker (Linux would keep the later copy of an out-of-order overlap)');
    const s = await stats();
    t.ok(Number(s['stream_anomaly_overlap_different_data']) >= 1, 'the differing overlap was seen and counted');
  });

  t.test('chunked + gzip: the marker inside a compressed chunked body is found and the request never completes', async (t) => {
    const gz = gzipSync(Buffer.from(`${'padding '.repeat(500)}${MARKER}${' padding'.repeat(500)}`));
    t.notOk(gz.includes(MARKER), 'the marker is not visible in the compressed bytes');
    const chunks = [gz.subarray(0, 100), gz.subarray(100)].map((c) => Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]));
    const req = Buffer.concat([Buffer.from('POST /gzip HTTP/1.1\r\nHost: lab\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n'), ...chunks, Buffer.from('0\r\n\r\n')]);
    const r = await py(['http', SERVER4, '8080', req.toString('hex'), '50']);
    t.equal(r['event'], 'error', `the client's connection was reset: ${JSON.stringify(r)}`);
    await control();
    t.notOk(events('request').some((e) => e['url'] === '/gzip'), 'the server never got the whole request');
  });

  t.test('pipelining: a clean request then one with the marker before any answer: only the first arrives', async (t) => {
    const first = post('/pipe-1', Buffer.from('clean body'));
    const second = post('/pipe-2', Buffer.from(`dirty ${MARKER}`));
    // Two writes without waiting for the first answer (pipelined), so two segments: the first one is clean.
    await py(['http', SERVER4, '8080', Buffer.concat([first, second]).toString('hex'), String(first.length)]);
    await control();
    t.notOk(events('request').some((e) => e['url'] === '/pipe-2'), 'the second request never completed');
    t.ok(events('request').some((e) => e['url'] === '/pipe-1'), 'the first one did');
    t.notOk(received('/pipe-2').includes(MARKER));
  });

  t.test('a raw (non-HTTP) stream is inspected too: the marker in 3-byte segments never reaches the sink', async (t) => {
    const bytes = Buffer.from(`\u0001binary-ish ${MARKER} protocol`);
    await py(['raw', SERVER4, '7000', JSON.stringify(segments(bytes, 3))]);
    await control();
    t.notOk(received(null).includes(MARKER));
    const s = await stats();
    t.ok(Number(s['content_verdict_reject']) >= 5, `every attack above was rejected by the stage (${String(s['content_verdict_reject'])})`);
  });
}
