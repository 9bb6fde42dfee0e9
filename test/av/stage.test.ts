/**
 * The inline antivirus stage (src/av/stage.ts) against a real clamd (test/helpers/clamd.ts), driven through
 * TestFlowView (fixtures/flow-view.ts), which applies the content-stage contract and records every call.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { AntivirusStage, type AntivirusStageOptions } from '../../src/av/stage.js';
import { AntivirusSectionSchema, type AntivirusScopeSection } from '../../src/av/policy.js';
import { eicarTestObject } from '../../src/av/eicar.js';
import { ACTION } from '../../src/pipeline/stage.js';
import { CLEARED_ALL } from '../../src/pipeline/content.js';
import { HTTP_END, HTTP_OBJECT } from '../../src/stream/http1.js';
import { LogEventSchema, timeFields } from '../../src/log/schema.js';
import type { UnstampedEvent } from '../../src/log/router.js';
import { startTestClamd } from '../helpers/clamd.js';
import { waitFor } from '../helpers/wait.js';
import { feedObject, flowMeta, HEAD_BYTES, httpHead, TestFlowView, UNTIL_TIMEOUT_MS, waitOn, type Waiter } from './fixtures/flow-view.js';
import { startReplyGate } from './fixtures/reply-gate.js';

const EICAR_SIGNATURE = 'GWI.Test.EICAR.UNOFFICIAL';
const REQ = HTTP_OBJECT.REQUEST;
const RES = HTTP_OBJECT.RESPONSE;
const WAIT_MS = 30_000;

/** Clean bytes that match none of our signatures. */
function cleanObject(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 0x20 + (((i + seed) * 7) % 90);
  return b;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The stage's log, each event checked against the verdict-log schema as the router would stamp it. */
class Log {
  readonly events: UnstampedEvent[] = [];
  private readonly waiters: Waiter[] = [];
  readonly fn = (e: UnstampedEvent): void => {
    LogEventSchema.parse({ ...e, ...timeFields(Date.now()), applianceId: 'test', policyVersion: null, suppressed: 0 });
    this.events.push(e);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i] as Waiter;
      if (w.cond()) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  };
  of<K extends UnstampedEvent['kind']>(kind: K): Extract<UnstampedEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<UnstampedEvent, { kind: K }> => e.kind === kind);
  }
  until(cond: () => boolean): Promise<void> {
    return waitOn(this.waiters, cond, UNTIL_TIMEOUT_MS, () => JSON.stringify(this.events));
  }
}

interface Made {
  readonly stage: AntivirusStage;
  readonly log: Log;
}

function makeStage(
  address: string,
  section: Record<string, unknown> = {},
  scopes: [string, AntivirusScopeSection | null][] = [],
  options: Partial<AntivirusStageOptions> = {},
): Made {
  const log = new Log();
  const stage = new AntivirusStage(
    { section: AntivirusSectionSchema.parse({ enabled: true, ...section }), scopes: new Map(scopes) },
    address,
    { log: log.fn, wallNowMs: () => Date.now() },
    { canary: { intervalMs: 3_600_000 }, ...options },
  );
  return { stage, log };
}

/** A GET (bodyless) then its response with `body`. */
function download(view: TestFlowView, stage: AntivirusStage, body: Uint8Array, opts: { segment?: number; host?: string; target?: string; headers?: [string, string][]; end?: (typeof HTTP_END)[keyof typeof HTTP_END] } = {}) {
  feedObject(view, stage, 0, REQ, httpHead(REQ, { target: opts.target ?? '/file.bin', headers: [['host', opts.host ?? 'example.com']], bodyless: true }), new Uint8Array(0));
  return feedObject(view, stage, 1, RES, httpHead(RES, { headers: [['content-length', String(body.length)], ...(opts.headers ?? [])] }), body, {
    ...(opts.segment === undefined ? {} : { segment: opts.segment }),
    ...(opts.end === undefined ? {} : { end: opts.end }),
  });
}

const clamd = await startTestClamd(t);

t.test('a clean download: the tail is pinned at the chunk that completes the object, then cleared on the answer', async (t) => {
  const { stage, log } = makeStage(clamd.unixAddress);
  const view = new TestFlowView();
  t.ok(stage.wants(view.meta));
  const body = cleanObject(100_000);
  const end = download(view, stage, body, { segment: 10_000 });
  t.same(view.calls, [{ type: 'cleared', dir: 1, offset: end.endChunkStart, inEvent: true }], 'pinned inside the end event, at its chunkStart');
  t.ok(end.endChunkStart > 0 && end.endChunkStart < view.delivered(1), 'everything before the last chunk was cleared all along');
  await view.until(() => view.clearedBy(stage, 1) === CLEARED_ALL);
  t.same(view.clearedCalls(1), [end.endChunkStart, CLEARED_ALL]);
  t.same(view.clearedCalls(0), [], 'the bodyless request pinned nothing');
  t.same(view.decisions(), []);
  t.equal(stage.counters.clean, 1);
  t.equal(stage.counters.bytes_scanned, body.length);
  t.equal(stage.scanner.counters.scans, 1, 'the bodyless GET cost no clamd connection');
  t.same(log.events, [], 'a clean object logs nothing');
  stage.onFlowEnd(view);
});

t.test('EICAR split into 1-byte segments inside a larger response: reject with the signature, finding with its SHA-256', async (t) => {
  const { stage, log } = makeStage(clamd.unixAddress);
  const view = new TestFlowView();
  const body = Buffer.concat([cleanObject(700), eicarTestObject(), cleanObject(300, 5)]);
  const end = download(view, stage, body, { segment: 1, target: '/dl/eicar.com' });
  t.equal(view.clearedBy(stage, 1), end.endChunkStart, 'the last byte waits for the verdict');
  await view.until(() => view.decided);
  t.same(view.clearedCalls(1), [end.endChunkStart], 'never cleared past the tail');
  const [d] = view.decisions();
  t.match(d, { action: ACTION.REJECT, why: { reason: 'av.infected', rule: EICAR_SIGNATURE }, inEvent: false });
  const [f] = log.of('content_finding');
  t.match(f, {
    stage: 'av',
    action: 'reject',
    reason: 'av.infected',
    signature: EICAR_SIGNATURE,
    direction: 'to_client',
    dstPort: 80,
    endpointId: 'vpce-0123456789abcdef0',
    finding: { type: 'av', engine: 'clamav', signature: EICAR_SIGNATURE, objectName: 'example.com/dl/eicar.com', objectBytes: body.length, objectSha256: sha256(body) },
  });
  t.equal(stage.counters.infected, 1);
  stage.onFlowEnd(view);
});

t.test('a gzip response the inspector decoded: the decoded bytes are scanned; action drop from the policy', async (t) => {
  const { stage, log } = makeStage(clamd.unixAddress, { action: 'drop' });
  const view = new TestFlowView();
  download(view, stage, eicarTestObject(), { segment: 7, headers: [['content-encoding', 'gzip']] });
  await view.until(() => view.decided);
  t.match(view.decisions(), [{ action: ACTION.DROP, why: { reason: 'av.infected', rule: EICAR_SIGNATURE } }]);
  t.match(log.of('content_finding'), [{ action: 'drop' }]);
  stage.onFlowEnd(view);
});

t.test('an infected upload (POST body) is rejected; direction to_server', async (t) => {
  const { stage, log } = makeStage(clamd.tcpAddress);
  const view = new TestFlowView();
  const body = Buffer.concat([cleanObject(5000), eicarTestObject()]);
  const end = feedObject(view, stage, 0, REQ, httpHead(REQ, { method: 'POST', target: '/upload', headers: [['host', 'up.example.com'], ['content-length', String(body.length)]] }), body, { segment: 1000 });
  t.equal(view.clearedBy(stage, 0), end.endChunkStart);
  await view.until(() => view.decided);
  t.match(view.decisions(), [{ action: ACTION.REJECT }]);
  t.match(log.of('content_finding'), [{ direction: 'to_server', finding: { objectName: 'up.example.com/upload' } }]);
  stage.onFlowEnd(view);
});

t.test('objects past max_object_bytes: not scanned (size_limit), per on_oversize', async (t) => {
  await t.test('open (the default): passes, logged as not scanned and failed open, never as clean', async (t) => {
    const { stage, log } = makeStage(clamd.unixAddress, { max_object_bytes: 1000 });
    const view = new TestFlowView();
    download(view, stage, cleanObject(5000), { segment: 700 });
    await log.until(() => log.of('anomaly').length > 0);
    t.match(log.of('anomaly'), [{ stage: 'av', code: 'av.not_scanned.size_limit', action: 'pass', reason: /failed open/ }]);
    t.same(view.decisions(), []);
    t.equal(view.clearedBy(stage, 1), CLEARED_ALL, 'nothing left pinned');
    t.equal(stage.counters.not_scanned_size_limit, 1);
    t.equal(stage.counters.failed_open, 1);
    t.equal(stage.counters.clean, 0, 'not counted clean');
    t.equal(stage.counters.bytes_scanned, 1000);
    t.equal(stage.counters.bytes_unscanned, 4000);
    stage.onFlowEnd(view);
  });
  await t.test('closed: the flow is dropped in the chunk that crosses the limit', async (t) => {
    const { stage, log } = makeStage(clamd.unixAddress, { max_object_bytes: 1000, on_oversize: 'closed' });
    const view = new TestFlowView();
    download(view, stage, cleanObject(5000), { segment: 700 });
    t.match(view.decisions(), [{ action: ACTION.DROP, why: { reason: 'av.not_scanned', rule: null, detail: /^size_limit: / }, inEvent: true }]);
    t.equal(view.delivered(1), 100 + 1400, 'decided in the second body chunk (bytes 700..1400)');
    t.match(log.of('anomaly'), [{ code: 'av.not_scanned.size_limit', action: 'drop', reason: /failed closed/ }]);
    t.equal(stage.counters.failed_closed, 1);
    stage.onFlowEnd(view);
  });
  await t.test('an infected prefix of an oversize object is still infected', async (t) => {
    const { stage, log } = makeStage(clamd.unixAddress, { max_object_bytes: 1000 });
    const view = new TestFlowView();
    download(view, stage, Buffer.concat([eicarTestObject(), cleanObject(5000)]), { segment: 500 });
    await view.until(() => view.decided);
    t.match(view.decisions(), [{ action: ACTION.REJECT, why: { rule: EICAR_SIGNATURE } }]);
    t.match(log.of('content_finding'), [{ finding: { objectBytes: 1000, objectSha256: null } }], 'no hash for a partial object');
    stage.onFlowEnd(view);
  });
});

t.test('objects not seen whole: a gap → on_incomplete (closed), the stream depth → on_oversize (open)', async (t) => {
  const { stage, log } = makeStage(clamd.unixAddress);
  const gap = new TestFlowView();
  download(gap, stage, cleanObject(3000), { end: HTTP_END.GAP });
  await gap.until(() => gap.decided);
  t.match(gap.decisions(), [{ action: ACTION.DROP, why: { reason: 'av.not_scanned', detail: /^incomplete: a gap/ } }]);
  const depth = new TestFlowView(flowMeta({ flowId: 'f2' }));
  download(depth, stage, cleanObject(3000), { end: HTTP_END.DEPTH });
  await depth.until(() => depth.clearedBy(stage, 1) === CLEARED_ALL && depth.calls.length === 2);
  t.same(depth.decisions(), []);
  t.match(log.of('anomaly'), [
    { code: 'av.not_scanned.incomplete', action: 'drop' },
    { code: 'av.not_scanned.size_limit', action: 'pass' },
  ]);
  stage.onFlowEnd(gap);
  stage.onFlowEnd(depth);
});

t.test('clamd down (killed by PID): not scanned (unreachable), per on_scanner_error', async (t) => {
  const dead = await startTestClamd(t);
  await dead.stop('SIGKILL');
  await t.test('closed (the default): the pinned tail never goes, the flow is dropped', async (t) => {
    const { stage, log } = makeStage(dead.unixAddress);
    const view = new TestFlowView();
    const end = download(view, stage, cleanObject(2000));
    await view.until(() => view.decided);
    t.same(view.clearedCalls(1), [end.endChunkStart]);
    t.match(view.decisions(), [{ action: ACTION.DROP, why: { reason: 'av.not_scanned', detail: /^unreachable: connect: (ENOENT|ECONNREFUSED)/ } }]);
    t.match(log.of('anomaly'), [{ code: 'av.not_scanned.unreachable', action: 'drop' }]);
    t.equal(stage.counters.not_scanned_unreachable, 1);
    stage.onFlowEnd(view);
  });
  await t.test('open: the tail is released, logged as not scanned', async (t) => {
    const { stage, log } = makeStage(dead.tcpAddress, { on_scanner_error: 'open' });
    const view = new TestFlowView();
    const end = download(view, stage, cleanObject(2000));
    await view.until(() => view.clearedBy(stage, 1) === CLEARED_ALL);
    t.same(view.clearedCalls(1), [end.endChunkStart, CLEARED_ALL]);
    t.same(view.decisions(), []);
    t.match(log.of('anomaly'), [{ code: 'av.not_scanned.unreachable', action: 'pass', reason: /failed open/ }]);
    t.equal(stage.counters.failed_open, 1);
    stage.onFlowEnd(view);
  });
});

/** A loopback peer that accepts and never replies; `read: false` also never reads (clamd not taking bytes). */
async function hangingPeer(t: { teardown(fn: () => unknown): void }, read: boolean): Promise<string> {
  const conns: Socket[] = [];
  const server = createServer({ pauseOnConnect: !read }, (s) => {
    conns.push(s);
    s.on('error', () => {});
    if (read) s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of conns) s.destroy();
    server.close();
  });
  const a = server.address();
  return `tcp:127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`;
}

t.test('a clamd that hangs: the scan times out → on_timeout; a hold budget running out → on_timeout', async (t) => {
  const hung = await hangingPeer(t, true);
  await t.test('the adapter reply deadline, closed (the default)', async (t) => {
    const { stage, log } = makeStage(hung, {}, [], { scanner: { replyTimeoutMs: 200 } });
    const view = new TestFlowView();
    download(view, stage, cleanObject(2000));
    await view.until(() => view.decided);
    t.match(view.decisions(), [{ action: ACTION.DROP, why: { detail: /^timeout: no reply/ } }]);
    t.match(log.of('anomaly'), [{ code: 'av.not_scanned.timeout', action: 'drop' }]);
    stage.onFlowEnd(view);
  });
  await t.test('the hold budget, open: PASS, logged once; the later scan timeout changes nothing', async (t) => {
    const { stage, log } = makeStage(hung, { on_timeout: 'open' }, [], { scanner: { replyTimeoutMs: 300 } });
    const view = new TestFlowView();
    download(view, stage, cleanObject(2000));
    t.equal(stage.onHoldExceeded(view, 1, 'ms'), ACTION.PASS);
    t.match(log.of('anomaly'), [{ code: 'av.not_scanned.timeout', action: 'pass', reason: /hold budget of 15000 ms ran out/ }]);
    await waitFor(() => stage.scanner.counters.notScanned.timeout === 1, WAIT_MS, 'the adapter timeout');
    // The answer is handled in a promise callback queued behind the one that counted it.
    await new Promise((r) => setImmediate(r));
    t.equal(log.of('anomaly').length, 1, 'not logged twice');
    t.same(view.decisions(), []);
    t.same(view.clearedCalls(1).length, 1, 'only the pin; the PASS cleared the rest');
    t.equal(stage.counters.hold_exceeded, 1);
    t.equal(stage.counters.not_scanned_timeout, 1);
    stage.onFlowEnd(view);
  });
  await t.test('the hold budget, closed: DROP', async (t) => {
    const { stage, log } = makeStage(hung);
    const view = new TestFlowView();
    download(view, stage, cleanObject(2000));
    t.equal(stage.onHoldExceeded(view, 1, 'bytes'), ACTION.DROP);
    t.match(log.of('anomaly'), [{ code: 'av.not_scanned.timeout', action: 'drop', reason: /hold budget of 4194304 bytes/ }]);
    stage.onFlowEnd(view);
  });
});

t.test('a clamd that stops taking bytes: the direction is pinned behind the current chunk (backpressure) until the write deadline', async (t) => {
  const stuck = await hangingPeer(t, false);
  const { stage } = makeStage(stuck, {}, [], { scanner: { writeTimeoutMs: 300 } });
  const view = new TestFlowView();
  feedObject(view, stage, 0, REQ, httpHead(REQ, { bodyless: true }), new Uint8Array(0));
  const segment = cleanObject(64 * 1024);
  view.chunk(1, HEAD_BYTES, () => stage.onObjectStart(view, 1, RES, httpHead(RES)));
  // Packets arrive over time (the event loop turns between them) until the stage pins: a real sender then stops
  // once its window is full, because the pinned bytes are not delivered and so not acknowledged.
  let chunks = 0;
  while (view.calls.length === 0 && chunks < 1024) {
    view.chunk(1, segment.length, () => stage.onBody(view, 1, segment));
    chunks++;
    await new Promise((r) => setImmediate(r));
  }
  t.match(view.calls, [{ type: 'cleared', dir: 1, inEvent: true }], 'pinned while the object streams');
  const pin = view.clearedCalls(1)[0] ?? -1;
  t.equal(pin, view.delivered(1), 'at the end of the chunk whose write found clamd behind');
  t.ok(stage.scanner.counters.active === 1, 'the scan is still streaming, not overloaded');
  await view.until(() => view.decided);
  t.match(view.decisions(), [{ action: ACTION.DROP, why: { reason: 'av.not_scanned', detail: /^timeout: clamd took no bytes/ } }]);
  stage.onFlowEnd(view);
});

t.test('pipelined responses answered out of order: cleared is always the lowest pin still waiting', async (t) => {
  const gate = await startReplyGate(t, clamd.socketPath);
  const { stage } = makeStage(gate.address);
  const view = new TestFlowView();
  feedObject(view, stage, 0, REQ, httpHead(REQ, { target: '/a', headers: [['host', 'h']], bodyless: true }), new Uint8Array(0));
  feedObject(view, stage, 0, REQ, httpHead(REQ, { target: '/b', headers: [['host', 'h']], bodyless: true }), new Uint8Array(0));
  const a = feedObject(view, stage, 1, RES, httpHead(RES), cleanObject(3000));
  const b = feedObject(view, stage, 1, RES, httpHead(RES), cleanObject(2000, 3));
  t.ok(a.endChunkStart < b.endChunkStart);
  t.same(view.clearedCalls(1), [a.endChunkStart], 'B pinned too, but A pins lower');
  await waitFor(() => gate.accepted() === 2, WAIT_MS, 'both scans connected');
  await gate.replyReady(1);
  gate.release(1);
  await waitFor(() => stage.counters.clean === 1, WAIT_MS, "B's answer");
  t.same(view.clearedCalls(1), [a.endChunkStart], "B's clean answer does not release A's tail");
  await gate.replyReady(0);
  gate.release(0);
  await view.until(() => view.clearedBy(stage, 1) === CLEARED_ALL);
  t.same(view.clearedCalls(1), [a.endChunkStart, CLEARED_ALL]);

  // In order this time: A's answer moves the pin up to B's.
  const c = feedObject(view, stage, 1, RES, httpHead(RES), cleanObject(1000));
  const d = feedObject(view, stage, 1, RES, httpHead(RES), cleanObject(1000, 9));
  await waitFor(() => gate.accepted() === 4, WAIT_MS, 'both scans connected');
  await gate.replyReady(2);
  gate.release(2);
  await view.until(() => view.clearedBy(stage, 1) === d.endChunkStart);
  gate.release(3);
  await view.until(() => view.clearedBy(stage, 1) === CLEARED_ALL);
  t.same(view.clearedCalls(1).slice(2), [c.endChunkStart, d.endChunkStart, CLEARED_ALL]);
  stage.onFlowEnd(view);
});

t.test('alert mode never pins and never decides: the finding is logged as alert', async (t) => {
  const { stage, log } = makeStage(clamd.unixAddress, { mode: 'alert' });
  t.equal(stage.blocking, false);
  const view = new TestFlowView();
  download(view, stage, eicarTestObject(), { segment: 10 });
  await log.until(() => log.of('content_finding').length === 1);
  t.same(view.calls, []);
  t.match(log.of('content_finding'), [{ action: 'alert', signature: EICAR_SIGNATURE }]);
  stage.onFlowEnd(view);
});

t.test('skips: response Content-Type prefixes and request Host names (exact, *.suffix)', async (t) => {
  const { stage } = makeStage(clamd.unixAddress, { skip_content_types: ['video/'], skip_domains: ['*.example.com', 'exact.test'] });
  const cases: [string, string, string, boolean][] = [
    ['content type', 'example.org', 'Video/MP4', true],
    ['*.suffix', 'cdn.example.com:8080', 'application/octet-stream', true],
    ['exact, trailing dot', 'EXACT.test.', 'application/octet-stream', true],
    ['the bare suffix domain is not under *.', 'example.com', 'application/octet-stream', false],
    ['another type', 'example.org', 'audio/mpeg', false],
  ];
  for (const [name, host, type, skipped] of cases) {
    const view = new TestFlowView(flowMeta({ flowId: name }));
    download(view, stage, eicarTestObject(), { host, headers: [['content-type', type]] });
    if (skipped) t.same(view.calls, [], `${name}: not scanned, not pinned`);
    else {
      await view.until(() => view.decided);
      t.match(view.decisions(), [{ action: ACTION.REJECT }], `${name}: scanned`);
    }
    stage.onFlowEnd(view);
  }
  t.equal(stage.counters.skipped_content_type, 1);
  t.equal(stage.counters.skipped_domain, 2);
  t.equal(stage.scanner.counters.scans, 2, 'skipped objects cost no clamd connection');
});

t.test('an answer after onFlowEnd changes nothing', async (t) => {
  const { stage, log } = makeStage(clamd.unixAddress);
  const view = new TestFlowView();
  download(view, stage, eicarTestObject());
  const before = view.calls.length;
  stage.onFlowEnd(view); // the view stays open: any call the stage made would be recorded
  await waitFor(() => stage.counters.late_answers === 1, WAIT_MS, 'the late answer');
  t.equal(view.calls.length, before);
  t.same(log.events, []);
});

t.test('scopes, ports, directions and reload', async (t) => {
  const { stage } = makeStage(clamd.unixAddress, { ports: [80, 8080], directions: ['to_client'] }, [
    ['default', null],
    ['tenant-a', { mode: 'alert' }],
    ['tenant-off', { enabled: false }],
  ]);
  t.ok(stage.wants(flowMeta({ serverPort: 8080 })));
  t.notOk(stage.wants(flowMeta({ serverPort: 443 })), 'port not listed');
  t.notOk(stage.wants(flowMeta({ scopeName: 'tenant-off' })), 'scope disabled');
  t.ok(stage.blocking, 'some scope blocks');

  const upload = new TestFlowView();
  feedObject(upload, stage, 0, REQ, httpHead(REQ, { method: 'POST', headers: [['content-length', '68']] }), eicarTestObject());
  t.same(upload.calls, [], 'to_server not scanned');
  t.equal(stage.scanner.counters.scans, 0);
  stage.onFlowEnd(upload);

  const alert = new TestFlowView(flowMeta({ scopeName: 'tenant-a' }));
  download(alert, stage, eicarTestObject());
  t.same(alert.calls, [], "tenant-a's alert mode: no pin");
  stage.onFlowEnd(alert);

  // A flow under inspection keeps the policy it started with.
  const old = new TestFlowView(flowMeta({ flowId: 'old' }));
  feedObject(old, stage, 0, REQ, httpHead(REQ, { bodyless: true }), new Uint8Array(0));
  stage.reconfigure({ section: AntivirusSectionSchema.parse({ enabled: true, mode: 'alert' }), scopes: new Map() });
  t.equal(stage.blocking, false);
  feedObject(old, stage, 1, RES, httpHead(RES), eicarTestObject());
  await old.until(() => old.decided);
  t.match(old.decisions(), [{ action: ACTION.REJECT }], 'still block mode');
  stage.onFlowEnd(old);
  const fresh = new TestFlowView(flowMeta({ flowId: 'new' }));
  download(fresh, stage, eicarTestObject());
  t.same(fresh.calls, [], 'a new flow gets alert mode');
  stage.onFlowEnd(fresh);
});

t.test('health follows the canary per fail mode; scanner_state events', async (t) => {
  const own = await startTestClamd(t);
  const closed = makeStage(own.unixAddress);
  const open = makeStage(own.unixAddress, { on_scanner_error: 'open' });
  t.equal(closed.stage.health().state, 'down', 'nothing proven before start: fail-closed is down');
  t.equal(open.stage.health().state, 'degraded');
  await closed.stage.start();
  await open.stage.start();
  t.match(closed.stage.health(), { state: 'up', detail: new RegExp(EICAR_SIGNATURE.replace(/\./g, '\\.')) });
  t.match(closed.log.of('scanner_state'), [{ scanner: 'clamav', state: 'up', previous: 'unknown' }]);
  await own.stop('SIGKILL');
  for (const m of [closed, open]) {
    await m.stage.canary.check();
    t.equal(m.stage.health().state, 'degraded', 'one failed check after up');
    await m.stage.canary.check();
  }
  t.match(closed.stage.health(), { state: 'down', detail: /on_scanner_error: closed/ });
  t.match(open.stage.health(), { state: 'degraded', detail: /on_scanner_error: open/ });
  t.match(closed.log.of('scanner_state'), [{ state: 'up' }, { state: 'degraded', previous: 'up' }, { state: 'down', previous: 'degraded', detail: /^unreachable/ }]);
  await closed.stage.stop();
  await open.stage.stop();

  const disabled = new AntivirusStage({ section: null, scopes: new Map() }, own.unixAddress, { log: () => {}, wallNowMs: Date.now });
  t.equal(disabled.health().state, 'up', 'no scope enables it: nothing to be down for');
  t.notOk(disabled.wants(flowMeta()));
});

t.test('a scanner that is down at start logs its state once (previous unknown)', async (t) => {
  const dead = await startTestClamd(t);
  await dead.stop('SIGKILL');
  const { stage, log } = makeStage(dead.unixAddress);
  await stage.start();
  t.match(log.of('scanner_state'), [{ state: 'down', previous: 'unknown', detail: /^unreachable/ }]);
  t.equal(stage.health().state, 'down');
  await stage.stop();
});
