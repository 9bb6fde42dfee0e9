/**
 * The DLP stage in the packet path, through the lab (docs/dlp.md): real kernel TCP and raw segments from the client
 * namespace (test/e2e/fixtures/content-client.py), the real appliance with the built-in packs, and what the server
 * namespace actually received (test/e2e/fixtures/content-servers.mjs). A card number posted outbound never reaches
 * the server complete, however the bytes are cut or encoded; a clean post arrives intact; in alert mode the post
 * passes and the verdict log has a masked finding without the number.
 */
import t from 'tap';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { startLab, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces, LAB_ADDR } from '../../src/lab/netns.js';
import { ROOT, e2ePrerequisites, jsonLines, uniqueLabId, waitForOutput, type Json } from './fixtures/lab-helpers.js';
import { CONTENT_SERVERS, contentClient, labStats, post, reloadPolicy, segments, until as untilTrue } from './fixtures/content-helpers.js';

const FIXTURES = join(ROOT, 'test', 'e2e', 'fixtures');
const POLICY_TEXT = readFileSync(join(FIXTURES, 'dlp-policy.yaml'), 'utf8');
const SERVERS = CONTENT_SERVERS;
const SERVER4 = LAB_ADDR.server4;
/** A Luhn-valid Visa number that is not one of the networks' documented test numbers. */
const CARD = '4556 7375 8689 9855';
const CARD_DIGITS = CARD.replace(/ /g, '');
/** Two more valid numbers (Mastercard, Visa), for the form with three. */
const CARDS = [CARD, '5425-2334-3010-9903', '4539148803436467'];
const AWS_KEY_ID = 'AKIAQWERTYUIOPASDFGH';
const AWS_SECRET = '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';
const WAIT_MS = 20_000;

const problems = await e2ePrerequisites(['python3']);
if (problems.length > 0) {
  t.fail(`the DLP e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('dlp');
  const dir = t.testdir({});
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, POLICY_TEXT);
  let lab: Lab | undefined;
  let servers: LabProcess | undefined;
  let statsUrl = '';
  let appLog = '';
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const L = (): Lab => lab as Lab;

  t.before(async () => {
    lab = await startLab({ id });
    const a = await lab.startAppliance({ policy: policyFile, workers: 2 });
    statsUrl = a.statsUrl;
    appLog = a.logFile;
    servers = lab.spawn('server', [process.execPath, SERVERS]);
    await waitForOutput(servers, /"event":"ready"/);
  });

  const events = (kind: string, url: string): Json[] => jsonLines((servers as LabProcess).stdout()).filter((e) => e['event'] === kind && e['url'] === url);
  const received = (url: string): string => jsonLines((servers as LabProcess).stdout()).filter((e) => e['url'] === url).map((e) => String(e['body'] ?? '')).join('\n');
  const until = (what: string, probe: () => boolean | Promise<boolean>): Promise<void> => untilTrue(what, WAIT_MS, probe);
  const py = (args: string[]): Promise<Json> => contentClient(L(), args);
  const stats = (): Promise<Json> => labStats(L(), statsUrl);
  let controls = 0;
  /** A clean request answered on a new connection: what was sent before on other connections has settled. */
  const control = async (): Promise<void> => {
    const url = `/control-${++controls}`;
    const r = await py(['http', SERVER4, '8080', post(url, Buffer.from('nothing sensitive')).toString('hex')]);
    if (r['event'] !== 'answer') throw new Error(`the control request failed: ${JSON.stringify(r)}`);
  };
  const hasCard = (text: string): boolean => text.replace(/[ -]/g, '').includes(CARD_DIGITS);
  const reloadWith = (text: string): Promise<void> => reloadPolicy(L(), statsUrl, policyFile, text, WAIT_MS);

  t.test('a clean post arrives byte for byte', async (t) => {
    const body = Buffer.from('order 1234: two coffees, one tea\n'.repeat(100));
    const r = await py(['http', SERVER4, '8080', post('/clean', body).toString('hex')]);
    t.equal(r['event'], 'answer', JSON.stringify(r));
    t.equal(events('request', '/clean')[0]?.['sha256'], createHash('sha256').update(body).digest('hex'));
  });

  t.test('a form with three card numbers is blocked: the server never receives a complete number', async (t) => {
    const form = Buffer.from(`name=Jo&card1=${encodeURIComponent(CARDS[0] as string)}&card2=${CARDS[1]}&card3=${CARDS[2]}&submit=pay`);
    const r = await py(['http', SERVER4, '8080', post('/cards-form', form, 'Content-Type: application/x-www-form-urlencoded\r\n').toString('hex')]);
    t.equal(r['event'], 'error', `the client's connection was reset: ${JSON.stringify(r)}`);
    await control();
    const got = decodeURIComponent(received('/cards-form'));
    for (const c of CARDS) t.notOk(got.replace(/[ -]/g, '').includes(c.replace(/[ -]/g, '')), `the server never held all the digits of ${c.slice(-4)}`);
    t.same(events('request', '/cards-form'), []);
  });

  t.test('a gzip-compressed JSON upload with an AWS key pair is caught', async (t) => {
    const json = gzipSync(Buffer.from(JSON.stringify({ profile: 'prod', aws_access_key_id: AWS_KEY_ID, aws_secret_access_key: AWS_SECRET })));
    t.notOk(json.includes(AWS_KEY_ID), 'the key id is not visible in the compressed bytes');
    const r = await py(['http', SERVER4, '8080', post('/aws-gzip', json, 'Content-Type: application/json\r\nContent-Encoding: gzip\r\n').toString('hex')]);
    t.equal(r['event'], 'error', `reset: ${JSON.stringify(r)}`);
    await control();
    t.same(events('request', '/aws-gzip'), [], 'the upload never completed');
  });

  t.test('a clean 20 MB upload passes intact', async (t) => {
    // Text without digits runs or key-like strings: the detectors have nothing to find in it.
    const line = Buffer.from('the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs\n');
    const body = Buffer.alloc(20 * 1024 * 1024);
    for (let i = 0; i < body.length; i += line.length) line.copy(body, i);
    const file = join(dir, 'clean-20mb.bin');
    writeFileSync(file, post('/clean-20mb', body));
    const r = await py(['http', SERVER4, '8080', `@${file}`]);
    t.equal(r['event'], 'answer', JSON.stringify(r));
    t.equal(events('request', '/clean-20mb')[0]?.['sha256'], createHash('sha256').update(body).digest('hex'), 'byte for byte');
  });

  t.test('a card number in a body sent as 1-byte segments never reaches the server complete', async (t) => {
    const req = post('/card-bytes', Buffer.from(`name=Jo&card=${CARD}&exp=12/29`));
    await py(['raw', SERVER4, '8080', JSON.stringify(segments(req, 1))]);
    await control();
    t.notOk(hasCard(received('/card-bytes')), 'the server never held all the digits');
    t.same(events('request', '/card-bytes'), [], 'the request never completed');
  });

  t.test('a card number inside a gzip + chunked body is found and the post never completes', async (t) => {
    const gz = gzipSync(Buffer.from(`{"payment":{"card":"${CARD}","cvv":"123"}}`));
    const chunked = Buffer.concat([Buffer.from(`${gz.length.toString(16)}\r\n`), gz, Buffer.from('\r\n0\r\n\r\n')]);
    const req = Buffer.concat([Buffer.from('POST /card-gzip HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked]);
    const r = await py(['http', SERVER4, '8080', req.toString('hex'), '16']);
    t.equal(r['event'], 'error', `reset: ${JSON.stringify(r)}`);
    await control();
    t.same(events('request', '/card-gzip'), []);
    const s = await stats();
    t.ok(Number(s['content_verdict_reject']) >= 4, 'every post above with a secret was rejected by the DLP stage');
  });

  t.test('alert mode: the post passes, and the log has a masked, hashed finding without the number', async (t) => {
    await reloadWith(POLICY_TEXT.replace('mode: block', 'mode: alert'));
    const r = await py(['http', SERVER4, '8080', post('/card-alert', Buffer.from(`card=${CARD}`)).toString('hex')]);
    t.equal(r['event'], 'answer', JSON.stringify(r));
    t.equal(events('request', '/card-alert').length, 1, 'delivered');
    const alertFinding = (): string | undefined => readFileSync(appLog, 'utf8').split('\n').find((l) => l.includes('"content_finding"') && l.includes('"action":"alert"'));
    await until('the alert finding in the verdict log', () => alertFinding() !== undefined);
    const log = readFileSync(appLog, 'utf8');
    const finding = alertFinding() as string;
    t.match(finding, /"detector":"credit_card"/);
    t.match(finding, /hmac-sha256:[0-9a-f]{64}/, 'a keyed hash');
    t.match(finding, /9855/, 'the masked form keeps the last four digits');
    t.notOk(hasCard(log), 'the number appears nowhere in the appliance log');
  });
}
