import t from 'tap';
import { gzipSync, gunzipSync, constants as zc } from 'node:zlib';
import { DlpStage, DLP_COUNTERS, dlpEnabled, dlpStageConfig } from '../../src/dlp/stage.js';
import { loadPolicy } from '../../src/policy/load.js';
import { join } from 'node:path';
import { DlpSectionSchema, DlpScopeSchema, type DlpScopeSection } from '../../src/dlp/policy.js';
import { keyedHash } from '../../src/dlp/hash-key.js';
import { ACTION } from '../../src/pipeline/stage.js';
import { LogEventSchema } from '../../src/log/schema.js';
import type { UnstampedEvent } from '../../src/log/router.js';
import { Driver, META, segments } from '../helpers/dlp-driver.js';

const KEY = Buffer.alloc(32, 7);
const CARDS = ['4539148803436467', '5425233430109903', '4556738291029382'];

function makeStage(section: Record<string, unknown> = {}, scopes: [string, DlpScopeSection | null][] = []) {
  const events: UnstampedEvent[] = [];
  const stage = new DlpStage(
    { section: DlpSectionSchema.parse({ enabled: true, ...section }), scopes: new Map(scopes) },
    { log: (e) => events.push(e), wallNowMs: () => 1_700_000_000_000 },
    KEY,
  );
  return { stage, events };
}

const post = (body: Buffer | string, extra = ''): Buffer => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from(`POST /upload HTTP/1.1\r\nHost: example.test\r\n${extra}Content-Length: ${b.length}\r\n\r\n`), b]);
};
const chunked = (body: Buffer, size: number, extra = ''): Buffer => {
  const parts: Buffer[] = [Buffer.from(`POST /api HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n${extra}\r\n`)];
  for (let i = 0; i < body.length; i += size) {
    const c = body.subarray(i, i + size);
    parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
};
const send = (d: Driver, bytes: Buffer, size: number): void => {
  for (const s of segments(bytes, size)) d.packet(0, s);
};

t.test('block: a form with three cards in 1-byte segments is rejected before any complete number leaves', async (t) => {
  const { stage, events } = makeStage();
  const d = new Driver(stage);
  const req = post(`name=a&card1=${CARDS[0]}&card2=${CARDS[1]}&card3=${CARDS[2]}&end=1`);
  send(d, req, 1);
  t.equal(d.decisions.length, 1, 'decided once');
  t.equal(d.decisions[0]!.action, ACTION.REJECT);
  t.same(d.decisions[0]!.why, { reason: 'dlp.match', rule: 'credit_card' });
  const got = d.receivedBytes().toString('latin1');
  for (const c of CARDS) t.notOk(got.includes(c), 'the server never got a complete number');
  t.ok(got.includes(CARDS[0]!.slice(0, 15)), 'everything before the completing byte flowed (no needless hold)');
  const f = events.find((e) => e.kind === 'content_finding');
  t.ok(f, 'a finding is logged');
  if (f?.kind === 'content_finding' && f.finding.type === 'dlp') {
    t.equal(f.action, 'reject');
    t.equal(f.detector, 'credit_card');
    t.equal(f.finding.matchCount, 1);
    t.same(f.finding.matches[0], { keyedHash: keyedHash(KEY, CARDS[0]!), masked: '************6467', offset: req.indexOf(CARDS[0]!) });
  }
  t.equal(stage.counters.blocked, 1);
});

t.test('block: a card that ends a packet is held until the next byte decides it', async (t) => {
  const { stage } = makeStage();
  const d = new Driver(stage);
  const req = post(`card=${CARDS[0]}&x=1`);
  const cut = req.indexOf(CARDS[0]!) + CARDS[0]!.length;
  d.packet(0, req.subarray(0, cut));
  t.equal(d.decisions.length, 0, 'not decided yet: a digit may follow');
  t.equal(d.heldCount, 1, 'the packet with the last digit waits');
  t.notOk(d.receivedBytes().toString().includes(CARDS[0]!), 'the complete number did not leave');
  d.packet(0, req.subarray(cut));
  t.equal(d.decisions[0]?.action, ACTION.REJECT, 'the next byte ends it: blocked');
  t.notOk(d.receivedBytes().toString().includes(CARDS[0]!), 'and it never leaves');

  const d2 = new Driver(makeStage().stage);
  const longer = post(`id=${CARDS[0]}7&x=1`);
  const cut2 = longer.indexOf(CARDS[0]!) + CARDS[0]!.length;
  d2.packet(0, longer.subarray(0, cut2));
  t.equal(d2.heldCount, 1, 'held');
  d2.packet(0, longer.subarray(cut2));
  t.equal(d2.decisions.length, 0, 'a 17-digit run is not a card');
  t.same(d2.receivedBytes(), longer, 'released: the server got everything');
});

t.test('block: gzip + chunked JSON with an AWS key pair, in 7-byte segments', async (t) => {
  const { stage } = makeStage();
  const d = new Driver(stage);
  const secret = 'kT8s2vQ9mZ1pR4xW7yB3nC6dF0gH5jL8aE2uI9oP';
  const json = Buffer.from(JSON.stringify({ user: 'u', credentials: { AccessKeyId: 'AKIAQWERTYUIOPASDFGH', SecretAccessKey: secret } }));
  const req = chunked(gzipSync(json), 11, 'Content-Encoding: gzip\r\nContent-Type: application/json\r\n');
  send(d, req, 7);
  t.equal(d.decisions[0]?.action, ACTION.REJECT);
  t.equal(d.decisions[0]?.why.rule, 'aws_access_key_id', 'the key id comes first in the body');
  const bodyStart = d.receivedBytes().indexOf('\r\n\r\n') + 4;
  const dechunked: Buffer[] = [];
  let raw = d.receivedBytes().subarray(bodyStart);
  for (;;) {
    const eol = raw.indexOf('\r\n');
    if (eol < 0) break;
    const n = parseInt(raw.subarray(0, eol).toString(), 16);
    if (!(n > 0)) break;
    dechunked.push(raw.subarray(eol + 2, eol + 2 + n));
    raw = raw.subarray(eol + 4 + n);
  }
  const seen = gunzipSync(Buffer.concat(dechunked), { finishFlush: zc.Z_SYNC_FLUSH }).toString();
  t.notOk(seen.includes('AKIAQWERTYUIOPASDFGH'), 'the server cannot decode the complete key id');
  t.notOk(seen.includes(secret));
});

t.test('a clean POST passes intact and nothing stays held', async (t) => {
  const { stage, events } = makeStage();
  const d = new Driver(stage);
  const body = Buffer.from('lorem ipsum dolor sit amet, order 12345, total 99.95 EUR, ref 2024-11-30\n'.repeat(300));
  const req = post(body);
  send(d, req, 1000);
  d.end();
  t.equal(d.decisions.length, 0);
  t.same(d.receivedBytes(), req);
  t.equal(events.length, 0);
});

t.test('alert mode passes and logs a masked finding when the object ends', async (t) => {
  const { stage, events } = makeStage({ mode: 'alert' });
  t.equal(stage.blocking, false);
  const d = new Driver(stage);
  const req = post(`a=${CARDS[0]}&b=${CARDS[1]}`);
  send(d, req, 3);
  t.equal(d.decisions.length, 0);
  t.same(d.receivedBytes(), req, 'everything passed');
  const f = events.filter((e) => e.kind === 'content_finding');
  t.equal(f.length, 1);
  const e = f[0]!;
  if (e.kind === 'content_finding' && e.finding.type === 'dlp') {
    t.equal(e.action, 'alert');
    t.equal(e.finding.matchCount, 2);
    t.same(e.finding.matches.map((m) => m.masked), ['************6467', '************9903']);
  }
  t.ok(LogEventSchema.safeParse({ ...e, schemaVersion: 1, time: '2026-01-01T00:00:00.000Z', timeMs: 0, applianceId: 'a', policyVersion: null, suppressed: 0 }).success, 'the event fits the log schema');
});

t.test('min_count, per-detector overrides, directions, scopes and depth', async (t) => {
  const two = makeStage({ detectors: { credit_card: { min_count: 2 } } });
  const d1 = new Driver(two.stage);
  send(d1, post(`a=${CARDS[0]}&x=1`), 50);
  d1.end();
  t.equal(d1.decisions.length, 0, 'one card below min_count 2');
  const d2 = new Driver(two.stage);
  send(d2, post(`a=${CARDS[0]}&b=${CARDS[1]}&x=1`), 50);
  t.equal(d2.decisions.length, 1, 'two cards reach it');

  const off = makeStage({ detectors: { credit_card: { enabled: false } } });
  const d3 = new Driver(off.stage);
  send(d3, post(`a=${CARDS[0]}&x=1`), 50);
  t.equal(d3.decisions.length, 0, 'a disabled detector finds nothing');

  const resp = makeStage();
  const d4 = new Driver(resp.stage);
  send(d4, post('q=1'), 50);
  d4.packet(1, Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\ncard=${CARDS[0]}`));
  t.equal(d4.decisions.length, 0, 'responses are not scanned by default (to_server only)');
  const both = makeStage({ directions: ['to_server', 'to_client'] });
  const d5 = new Driver(both.stage);
  send(d5, post('q=1'), 50);
  d5.packet(1, Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\ncard=${CARDS[0]}\n`));
  t.equal(d5.decisions.length, 1, 'unless to_client is listed');

  const scoped = makeStage({}, [['tenant', DlpScopeSchema.parse({ enabled: false })], ['audit', DlpScopeSchema.parse({ mode: 'alert' })]]);
  t.notOk(scoped.stage.wants({ ...META, scopeName: 'tenant' }), 'a scope can switch DLP off');
  t.ok(scoped.stage.wants(META), 'the default scope keeps it');
  const d6 = new Driver(scoped.stage, { ...META, scopeName: 'audit' });
  send(d6, post(`a=${CARDS[0]}&x=1`), 50);
  t.equal(d6.decisions.length, 0, 'an alert-mode scope does not block');
  t.equal(scoped.events.length, 1, 'it logs');

  const shallow = makeStage({ scan_depth_bytes: { to_server: 100, to_client: 0 } });
  const d7 = new Driver(shallow.stage);
  send(d7, post(`${'x'.repeat(200)}&a=${CARDS[0]}&x=1`), 64);
  t.equal(d7.decisions.length, 0, 'a card past the scan depth passes');
  t.equal(shallow.stage.counters.depth_reached, 1);

  const head = makeStage();
  const d8 = new Driver(head.stage);
  send(d8, Buffer.from(`GET /pay?card=${CARDS[0]} HTTP/1.1\r\nHost: x\r\n\r\n`), 5);
  t.equal(d8.decisions.length, 1, 'a card in the URL is found (the head is scanned)');
});

t.test('keyword lookahead holds within the window; the hold budget and fail mode', async (t) => {
  const body = 'id=536-22-1234 (social security)';
  const req = post(body);
  const { stage } = makeStage();
  const d = new Driver(stage);
  const cut = req.indexOf('1234') + 5;
  d.packet(0, req.subarray(0, cut));
  t.equal(d.heldCount, 1, 'a bare SSN waits for a keyword that may follow within the window');
  d.packet(0, req.subarray(cut));
  t.equal(d.decisions[0]?.why.rule, 'us_ssn', 'the keyword after it raised it to VERY_LIKELY');

  const open = makeStage({ fail: 'open' });
  const d2 = new Driver(open.stage);
  d2.packet(0, req.subarray(0, cut));
  t.equal(d2.expireHold(0, 'ms'), ACTION.PASS, 'fail open passes');
  t.equal(d2.heldCount, 0);
  const closed = makeStage();
  const d3 = new Driver(closed.stage);
  d3.packet(0, req.subarray(0, cut));
  t.equal(d3.expireHold(0, 'bytes'), ACTION.REJECT, 'fail closed decides with the action');
  t.equal(closed.stage.counters.hold_exceeded, 1);
});

t.test('reconfigure: new flows use the new section', async (t) => {
  const { stage } = makeStage();
  stage.reconfigure({ section: DlpSectionSchema.parse({ enabled: false }), scopes: new Map() });
  t.notOk(stage.wants(META));
  stage.reconfigure({ section: DlpSectionSchema.parse({ enabled: true, action: 'drop' }), scopes: new Map() });
  const d = new Driver(stage);
  send(d, post(`a=${CARDS[0]}&x=1`), 9);
  t.equal(d.decisions[0]?.action, ACTION.DROP);
  t.same(Object.keys(stage.counters), [...DLP_COUNTERS]);
});

t.test('from a loaded policy: enabled anywhere, per-scope config', async (t) => {
  const dir = t.testdir({
    'p.yaml': ['version: 1', 'default_action: pass', 'scopes:', '  tenant:', '    endpoints: [vpce-0123456789abcdef0]', '    default_action: pass', '    dlp: { enabled: true, mode: alert }', ''].join('\n'),
  });
  const r = loadPolicy(join(dir, 'p.yaml'));
  if (!r.ok) throw new Error('policy');
  t.ok(dlpEnabled(r.policy), 'one scope enables it');
  const events: UnstampedEvent[] = [];
  const stage = new DlpStage(dlpStageConfig(r.policy), { log: (e) => events.push(e), wallNowMs: () => 0 }, KEY);
  t.notOk(stage.wants(META), 'off in the default scope');
  t.ok(stage.wants({ ...META, scopeName: 'tenant' }), 'on in the tenant scope');
  t.equal(stage.blocking, false, 'alert only');
});
