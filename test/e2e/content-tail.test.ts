/**
 * The content-chain contract through the lab with a stage that answers late (docs/architecture.md §3.2): the test
 * stage in object_end mode clears everything but the tail of each object and answers 2 s after the object ended,
 * as clamd would. Asserts on what the server namespace received (test/e2e/fixtures/content-servers.mjs):
 *   - a clean upload completes byte for byte once the late answer releases its tail;
 *   - an upload with the marker arrives all but its tail: the server ACKs every byte it got, and those ACKs never
 *     release the held client bytes; then both ends are reset;
 *   - when a hold budget runs out, the stage's fail mode decides (closed: blocked; open: delivered).
 */
import t from 'tap';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { startLab, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces, LAB_ADDR } from '../../src/lab/netns.js';
import { ROOT, e2ePrerequisites, jsonLines, uniqueLabId, waitForOutput, type Json } from './fixtures/lab-helpers.js';
import { CONTENT_SERVERS, contentClient, labStats, post, reloadPolicy, until as untilTrue } from './fixtures/content-helpers.js';

const FIXTURES = join(ROOT, 'test', 'e2e', 'fixtures');
const POLICY_TEXT = readFileSync(join(FIXTURES, 'content-tail-policy.yaml'), 'utf8');
const SERVERS = CONTENT_SERVERS;
const SERVER4 = LAB_ADDR.server4;
const MARKER = 'X-EVIL-MARKER-7';
const WAIT_MS = 20_000;

const problems = await e2ePrerequisites(['python3']);
if (problems.length > 0) {
  t.fail(`the content-chain e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('ctail');
  const dir = t.testdir({});
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY_TEXT);
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
    const a = await lab.startAppliance({ policy: policyFile, workers: 2, extraArgs: ['--enable-test-stages', 'true'] });
    statsUrl = a.statsUrl;
    servers = lab.spawn('server', [process.execPath, SERVERS]);
    await waitForOutput(servers, /"event":"ready"/);
  });

  const events = (kind: string, url: string): Json[] => jsonLines((servers as LabProcess).stdout()).filter((e) => e['event'] === kind && e['url'] === url);
  const until = (what: string, probe: () => boolean | Promise<boolean>): Promise<void> => untilTrue(what, WAIT_MS, probe);
  const py = (args: string[]): Promise<Json> => contentClient(L(), args);
  const stats = (): Promise<Json> => labStats(L(), statsUrl);
  /** The bytes as a file the client reads (objects too large for a command line). */
  let files = 0;
  const asFile = (bytes: Buffer): string => {
    const f = join(dir, `object-${++files}.bin`);
    writeFileSync(f, bytes);
    return `@${f}`;
  };
  const reloadWith = (text: string): Promise<void> => reloadPolicy(L(), statsUrl, policyFile, text, WAIT_MS);

  t.test('a clean 1 MB upload completes byte for byte once the late answer releases its tail', async (t) => {
    const body = randomBytes(1024 * 1024);
    const r = await py(['http', SERVER4, '8080', asFile(post('/clean-upload', body))]);
    t.equal(r['event'], 'answer', `the client got its answer: ${JSON.stringify(r)}`);
    const got = events('request', '/clean-upload')[0];
    t.ok(got !== undefined, 'the server received the whole request');
    t.equal(got?.['sha256'], createHash('sha256').update(body).digest('hex'), 'byte for byte');
    const s = await stats();
    t.ok(Number(s['content_held']) >= 1, 'its tail was held');
    t.ok(Number(s['content_released']) >= 1, 'and released by the answer');
  });

  t.test("an upload with the marker: all but its tail arrives; the server's ACKs release nothing; both ends are reset", async (t) => {
    const body = Buffer.concat([randomBytes(200 * 1024).map((b) => 97 + (b % 26)), Buffer.from(MARKER), Buffer.alloc(5000, 0x61)]);
    const total = body.length;
    const r = await py(['http', SERVER4, '8080', asFile(post('/infected-upload', body))]);
    t.equal(r['event'], 'error', `the client's connection was reset: ${JSON.stringify(r)}`);
    await until('the server to see the request end', () => events('partial', '/infected-upload').length + events('request', '/infected-upload').length > 0);
    t.same(events('request', '/infected-upload'), [], 'the object never arrived whole');
    const partial = events('partial', '/infected-upload')[0] as Json;
    t.ok(Number(partial['bytes']) < total, `the server got ${String(partial['bytes'])} of ${total} bytes`);
    t.ok(Number(partial['bytes']) > total / 2, 'everything but the tail flowed while the object was in progress (TCP kept moving)');
  });

  t.test('hold budget: closed blocks, open delivers, when the answer comes too late', async (t) => {
    await reloadWith(POLICY_TEXT.replace('verdict_delay_ms: 2000', 'verdict_delay_ms: 30000').replace('hold_budget_ms: 10000', 'hold_budget_ms: 500\n    fail: closed'));
    const closed = await py(['http', SERVER4, '8080', post('/budget-closed', Buffer.from('clean but slow')).toString('hex')]);
    t.equal(closed['event'], 'error', `fail closed: the request was dropped (${JSON.stringify(closed)})`);
    t.same(events('request', '/budget-closed'), [], 'and never reached the server');
    await reloadWith(POLICY_TEXT.replace('verdict_delay_ms: 2000', 'verdict_delay_ms: 30000').replace('hold_budget_ms: 10000', 'hold_budget_ms: 500\n    fail: open'));
    const open = await py(['http', SERVER4, '8080', post('/budget-open', Buffer.from('clean but slow')).toString('hex')]);
    t.equal(open['event'], 'answer', `fail open: the request went through after the budget (${JSON.stringify(open)})`);
    t.equal(events('request', '/budget-open').length, 1);
    t.ok(Number((await stats())['content_budget_ms']) >= 2, 'both budget expiries were counted');
  });
}
