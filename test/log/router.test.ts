import t from 'tap';
import { Writable } from 'node:stream';
import { LogRouter, type UnstampedEvent } from '../../src/log/router.js';
import { StdoutSink } from '../../src/log/sinks/stdout.js';
import { LogEventSchema } from '../../src/log/schema.js';

function verdict(rule: string, i = 0): UnstampedEvent {
  return {
    kind: 'flow_verdict',
    flowId: `0:${i}`,
    endpointId: 'vpce-0a1b2c3d4e5f60718',
    attachmentId: null,
    proto: 6,
    src: '198.51.100.7',
    srcPort: 40000 + (i % 20000),
    dst: '10.20.1.10',
    dstPort: 22,
    bytesToServer: 60,
    bytesToClient: 0,
    packetsToServer: 1,
    packetsToClient: 0,
    stage: 'firewall',
    action: 'drop',
    rule,
    ruleSource: 'p.yaml:1:1',
    signature: null,
    detector: null,
    reason: 'firewall.rule',
    direction: 'to_server',
    scope: 'default',
    serverName: null,
    serverNameSource: null,
  };
}

/** A pipe that collects what it is given (a real Writable; the sink cannot tell it from stdout). */
function collector(): { out: Writable; lines: string[] } {
  const lines: string[] = [];
  let rest = '';
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts);
      cb();
    },
  });
  return { out, lines };
}

/** A pipe whose reader never reads: every write after the first stays pending, like stdout into a stuck log driver. */
function stuckPipe(): Writable {
  return new Writable({ highWaterMark: 1024, write() {} });
}

t.test('events are stamped, valid against the schema, written as JSON lines, in order', async (t) => {
  const { out, lines } = collector();
  const router = new LogRouter({ sinks: [new StdoutSink(out)], queueBytes: 1 << 20, ratePerS: 1e6, sampleEvery: 1, applianceId: 'i-0123456789abcdef0', validate: true, wallNow: () => Date.UTC(2026, 11, 2, 13, 0, 0, 5) });
  router.policyVersion = '7';
  for (let i = 0; i < 100; i++) router.emit(verdict('ssh', i));
  router.emit({ kind: 'policy_reload', trigger: 'sighup', ok: true, file: 'p.yaml', errors: [] });
  await router.close(10_000);
  t.equal(lines.length, 101);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.match(first, { schemaVersion: 1, time: '2026-12-02T13:00:00.005Z', timeMs: Date.UTC(2026, 11, 2, 13, 0, 0, 5), applianceId: 'i-0123456789abcdef0', policyVersion: '7', suppressed: 0, flowId: '0:0' });
  t.same(lines.slice(0, 100).map((l) => (JSON.parse(l) as { flowId: string }).flowId), Array.from({ length: 100 }, (_, i) => `0:${i}`));
  for (const l of lines) t.ok(LogEventSchema.safeParse(JSON.parse(l)).success);
  t.equal(router.invalid, 0);
});

t.test('rate limits are per key; the next written event carries the suppressed count; control events are never limited', async (t) => {
  const { out, lines } = collector();
  let mono = 0;
  const router = new LogRouter({ sinks: [new StdoutSink(out)], queueBytes: 1 << 20, ratePerS: 2, sampleEvery: 1, applianceId: 'a', monoNow: () => mono });
  for (let i = 0; i < 50; i++) router.emit(verdict('flood', i));
  router.emit(verdict('other'));
  for (let i = 0; i < 20; i++) router.emit({ kind: 'scanner_state', scanner: 'clamav', state: 'down', previous: 'up', detail: `try ${i}` });
  mono = 1000;
  router.emit(verdict('flood', 99));
  await router.close(10_000);
  const events = lines.map((l) => JSON.parse(l) as { kind: string; rule?: string; suppressed: number });
  const flood = events.filter((e) => e.rule === 'flood');
  t.equal(flood.length, 3, 'burst of 2, then one after a second');
  t.equal(flood[2]?.suppressed, 48, 'the 48 left out are reported on the next one');
  t.equal(events.filter((e) => e.rule === 'other').length, 1);
  t.equal(events.filter((e) => e.kind === 'scanner_state').length, 20);
  t.match(router.stats(), { emitted: 72, written: 24, rateLimited: 48 });
});

t.test('a flood into a stuck sink: the queue stays under its byte cap, emit never waits, drops are exact', async (t) => {
  const cap = 256 * 1024;
  const sink = new StdoutSink(stuckPipe());
  const router = new LogRouter({ sinks: [sink], queueBytes: cap, ratePerS: 1e12, sampleEvery: 1, applianceId: 'a' });
  const N = 200_000;
  let accepted = 0;
  let maxQueued = 0;
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < N / 4; i++) if (router.emit(verdict('flood', i))) accepted++;
    // Let the pump run between rounds: it hands one chunk to the pipe, which never completes.
    await new Promise((r) => setImmediate(r));
    const s = router.stats() as { sinks: { stdout: { queueBytes: number } } };
    maxQueued = Math.max(maxQueued, s.sinks.stdout.queueBytes);
  }
  const s = router.stats() as { sinks: { stdout: { queueBytes: number; queued: number; queueFull: number; lines: number } } };
  t.ok(maxQueued <= cap, `queue bytes ${maxQueued} ≤ cap ${cap}`);
  t.ok(accepted < N / 10, `most of the flood was refused (${accepted} accepted)`);
  t.equal(s.sinks.stdout.queueFull, N - accepted, 'every refused event is counted');
  t.equal(s.sinks.stdout.queued + s.sinks.stdout.lines, accepted, 'accepted = still queued + handed to the pipe');
  await router.close(50);
  const after = router.stats() as { sinks: { stdout: { droppedAtShutdown: number; queued: number } } };
  t.equal(after.sinks.stdout.droppedAtShutdown, s.sinks.stdout.queued, 'what the deadline cut off is counted');
  t.equal(after.sinks.stdout.queued, 0);
  t.notOk(router.emit(verdict('late')), 'a closed router refuses events');
});

t.test('sampling thins flow verdicts 1 in N and never findings or anomalies', async (t) => {
  const { out, lines } = collector();
  const router = new LogRouter({ sinks: [new StdoutSink(out)], queueBytes: 1 << 20, ratePerS: 1e9, sampleEvery: 10, applianceId: 'a' });
  for (let i = 0; i < 1000; i++) router.emit(verdict('web', i));
  for (let i = 0; i < 30; i++) router.emit({ kind: 'anomaly', stage: 'engine', code: 'inner_truncated', action: 'drop', reason: 'short', flow: null, count: 1 });
  await router.close(10_000);
  const kinds = lines.map((l) => (JSON.parse(l) as { kind: string }).kind);
  t.equal(kinds.filter((k) => k === 'flow_verdict').length, 100);
  t.equal(kinds.filter((k) => k === 'anomaly').length, 30);
  t.match(router.stats(), { sampledOut: 900 });
  t.equal((JSON.parse(lines[1]!) as { suppressed: number }).suppressed, 9, 'each kept verdict stands for the 9 left out before it');
});

t.test('several sinks at once: each gets every event, and a stuck one does not hold the others back', async (t) => {
  const a = collector();
  const router = new LogRouter({ sinks: [new StdoutSink(a.out), { ...new StdoutSink(stuckPipe()), name: 'stuck', lingerMs: 0, batchBytes: 0, drain: () => new Promise<void>(() => {}), close: async () => {}, stats: () => ({}) }], queueBytes: 64 * 1024, ratePerS: 1e9, sampleEvery: 1, applianceId: 'a' });
  for (let i = 0; i < 500; i++) {
    router.emit(verdict('x', i));
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  await router.close(50);
  t.equal(a.lines.length, 500, 'the healthy sink got all of them');
  const s = router.stats() as { sinks: { stuck: { queueFull: number; droppedAtShutdown: number } } };
  t.ok(s.sinks.stuck.queueFull > 0, 'the stuck sink dropped and counted');
});
