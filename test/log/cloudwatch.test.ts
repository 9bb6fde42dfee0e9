/**
 * The CloudWatch Logs sink against a real moto_server on loopback, through a recording proxy that can inject
 * throttling and server errors. Events are read back with GetLogEvents / FilterLogEvents through our own signed
 * client (moto routes requests by the SigV4 scope: without `logs` they would land in its S3 emulation).
 */
import t from 'tap';
import { startMoto, LogsProxy, type Moto } from '../helpers/moto.js';
import { LogRouter, type UnstampedEvent } from '../../src/log/router.js';
import { CloudWatchLogsSink, CW_MAX_BATCH_BYTES, CW_MAX_BATCH_EVENTS, CW_MAX_BATCH_SPAN_MS } from '../../src/log/cloudwatch.js';
import { CloudWatchLogsClient } from '../../src/log/aws/logs-client.js';
import { CredentialProvider } from '../../src/log/aws/credentials.js';
import { LogEventSchema } from '../../src/log/schema.js';

const moto: Moto = await startMoto();
t.teardown(() => moto.stop());

const baseEnv = { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'secret', AWS_EC2_METADATA_DISABLED: 'true' };
const direct = new CloudWatchLogsClient({ ...baseEnv, AWS_ENDPOINT_URL: moto.url }, new CredentialProvider(baseEnv));
t.teardown(() => direct.close());

async function readStream(group: string, stream: string): Promise<string[]> {
  const messages: string[] = [];
  let token: string | undefined;
  for (;;) {
    const res = await direct.call('GetLogEvents', { logGroupName: group, logStreamName: stream, startFromHead: true, limit: 2000, ...(token !== undefined ? { nextToken: token } : {}) });
    if (res.status !== 200) throw new Error(`GetLogEvents: ${res.status} ${res.errorType} ${res.message}`);
    const events = res.body.events as { message: string }[];
    messages.push(...events.map((e) => e.message));
    const next = res.body.nextForwardToken as string;
    if (events.length === 0 || next === token) return messages;
    token = next;
  }
}

function anomaly(i: number, reason = `event ${i}`): UnstampedEvent {
  return { kind: 'anomaly', stage: 'engine', code: 'inner_truncated', action: 'drop', reason, flow: null, count: 1 };
}

async function setup(t: { teardown: (fn: () => unknown) => void }, opts: { group: string; stream: string; queueBytes?: number; warn?: (m: string, f: Record<string, unknown>) => void }) {
  const proxy = new LogsProxy(moto.port);
  const url = await proxy.start();
  t.teardown(() => proxy.stop());
  const sink = new CloudWatchLogsSink({
    logGroup: opts.group,
    logStream: opts.stream,
    env: { ...baseEnv, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: url, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' },
    lingerMs: 20,
    retryBaseMs: 5,
    retryMaxMs: 50,
    ...(opts.warn !== undefined ? { warn: opts.warn } : {}),
  });
  const router = new LogRouter({ sinks: [sink], queueBytes: opts.queueBytes ?? 16 << 20, ratePerS: 1e9, sampleEvery: 1, applianceId: 'i-0123456789abcdef0', validate: true });
  return { proxy, sink, router };
}

t.test('events arrive in order, complete, in the configured group and stream', async (t) => {
  const { proxy, sink, router } = await setup(t, { group: '/gwlb/verdicts', stream: 'i-0123456789abcdef0' });
  const t0 = Date.now();
  for (let i = 0; i < 1000; i++) {
    router.emit(anomaly(i), t0 + i);
    if (i % 250 === 249) await new Promise((r) => setTimeout(r, 30));
  }
  await router.close(60_000);
  const got = await readStream('/gwlb/verdicts', 'i-0123456789abcdef0');
  t.equal(got.length, 1000, 'complete');
  t.same(got.map((m) => (JSON.parse(m) as { reason: string }).reason), Array.from({ length: 1000 }, (_, i) => `event ${i}`), 'in order');
  for (const m of got.slice(0, 5)) t.ok(LogEventSchema.safeParse(JSON.parse(m)).success, 'each message is one schema-valid event');
  const filtered = await direct.call('FilterLogEvents', { logGroupName: '/gwlb/verdicts', limit: 10 });
  t.equal(filtered.status, 200);
  t.ok((filtered.body.events as { logStreamName: string }[]).every((e) => e.logStreamName === 'i-0123456789abcdef0'), 'the stream named in the settings');
  t.same(proxy.calls.slice(0, 2).map((c) => c.target), ['CreateLogGroup', 'CreateLogStream']);
  t.match(String(proxy.calls[0]?.headers.authorization), /Credential=AKIDTEST\/\d{8}\/us-east-1\/logs\/aws4_request/, 'SigV4 with the logs scope');
  t.ok(proxy.puts().length < 1000 / 10, `batched: ${proxy.puts().length} calls for 1000 events`);
  t.match(sink.stats(), { sentEvents: 1000, rejectedEvents: 0, failedEvents: 0 });
});

t.test('a second appliance on an existing group and stream: ResourceAlreadyExists is success', async (t) => {
  const first = await setup(t, { group: 'g-exists', stream: 's' });
  first.router.emit(anomaly(1));
  await first.router.close(30_000);
  const second = await setup(t, { group: 'g-exists', stream: 's' });
  second.router.emit(anomaly(2));
  await second.router.close(30_000);
  t.same((await readStream('g-exists', 's')).map((m) => (JSON.parse(m) as { reason: string }).reason), ['event 1', 'event 2']);
  t.match(second.sink.stats(), { createErrors: 0, sentEvents: 1 });
});

t.test('100,000 events: all delivered, every call within the PutLogEvents limits, one call in flight', async (t) => {
  const { proxy, sink, router } = await setup(t, { group: 'g-bulk', stream: 'bulk', queueBytes: 128 << 20 });
  const N = 100_000;
  const t0 = Date.now() - 3_600_000;
  for (let i = 0; i < N; i++) {
    // Every event is ~250 bytes, so the 1 MiB limit binds before the 10,000-event one (test/log/batch.test.ts
    // covers that with small entries); the second half has multi-byte UTF-8, so bytes ≠ characters.
    const reason = i < N / 2 ? `e${i}` : `event ${i} ${'é→'.repeat(40)}`;
    router.emit(anomaly(i, reason), t0 + Math.floor(i / 10));
  }
  await router.close(300_000);
  const puts = proxy.puts();
  t.equal(puts.reduce((n, c) => n + c.events, 0), N, 'every event sent exactly once');
  for (const c of puts) {
    if (c.events > CW_MAX_BATCH_EVENTS || c.apiBytes > CW_MAX_BATCH_BYTES || c.concurrent !== 1) t.fail(`call over a limit: ${c.events} events, ${c.apiBytes} bytes, ${c.concurrent} in flight`);
    const sorted = c.timestamps.every((ts, i) => i === 0 || ts >= (c.timestamps[i - 1] as number));
    if (!sorted) t.fail('timestamps out of order in one call');
    if ((c.timestamps.at(-1) as number) - (c.timestamps[0] as number) > CW_MAX_BATCH_SPAN_MS) t.fail('span over 24 h');
  }
  t.ok(puts.some((c) => c.apiBytes > CW_MAX_BATCH_BYTES - 400), 'the byte limit was reached');
  t.ok(puts.length <= 40, `${puts.length} calls: batches are full`);
  t.match(sink.stats(), { sentEvents: N, failedEvents: 0, rejectedEvents: 0, oversizeDropped: 0 });
  const got = await readStream('g-bulk', 'bulk');
  t.equal(got.length, N, 'moto stored them all');
  t.equal((JSON.parse(got[N - 1]!) as { reason: string }).reason, `event ${N - 1} ${'é→'.repeat(40)}`);
});

t.test('throttling and 5xx are retried with backoff; a 400 validation error is not, and is counted and reported', async (t) => {
  const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
  const { proxy, sink, router } = await setup(t, { group: 'g-faults', stream: 's', warn: (msg, fields) => warnings.push({ msg, fields }) });
  proxy.plan.push({ status: 400, type: 'ThrottlingException' }, { status: 503, type: 'ServiceUnavailableException' }, { status: 500, type: 'InternalFailure' });
  for (let i = 0; i < 10; i++) router.emit(anomaly(i));
  await new Promise<void>((resolve) => {
    const check = (): void => void (sink.stats().sentEvents === 10 ? resolve() : setTimeout(check, 20));
    check();
  });
  t.same(proxy.puts().map((c) => c.status), [400, 503, 500, 200], 'three faults, then success');
  t.match(sink.stats(), { retries: 3, throttled: 1, serverErrors: 2, sentEvents: 10 });
  proxy.plan.push({ status: 400, type: 'InvalidParameterException' });
  for (let i = 10; i < 15; i++) router.emit(anomaly(i));
  await router.close(30_000);
  t.equal(proxy.puts().length, 5, 'the rejected batch was sent once, not retried');
  t.match(sink.stats(), { retries: 3, rejectedCalls: 1, rejectedEvents: 5, sentEvents: 10 });
  t.match(warnings, [{ msg: 'cloudwatch_put_rejected', fields: { status: 400, type: 'InvalidParameterException', events: 5 } }]);
  t.same((await readStream('g-faults', 's')).map((m) => (JSON.parse(m) as { reason: string }).reason), Array.from({ length: 10 }, (_, i) => `event ${i}`), 'retried events stored once each');
});

t.test('a batch that keeps failing is given up after the attempt limit and counted', async (t) => {
  const { proxy, router, sink } = await setup(t, { group: 'g-fail', stream: 's' });
  for (let i = 0; i < 20; i++) proxy.plan.push({ status: 500, type: 'InternalFailure' });
  router.emit(anomaly(1));
  await router.close(60_000);
  t.equal(proxy.puts().length, 8, 'CW_MAX_ATTEMPTS calls');
  t.match(sink.stats(), { failedEvents: 1, sentEvents: 0, retries: 7 });
});

t.test('a stream deleted under the sink is created again', async (t) => {
  const { router, sink } = await setup(t, { group: 'g-del', stream: 's' });
  router.emit(anomaly(1));
  await new Promise<void>((resolve) => {
    const check = (): void => void (sink.stats().sentEvents === 1 ? resolve() : setTimeout(check, 20));
    check();
  });
  t.equal((await direct.call('DeleteLogStream', { logGroupName: 'g-del', logStreamName: 's' })).status, 200);
  router.emit(anomaly(2));
  await router.close(30_000);
  t.same((await readStream('g-del', 's')).map((m) => (JSON.parse(m) as { reason: string }).reason), ['event 2']);
  t.match(sink.stats(), { sentEvents: 2, failedEvents: 0 });
});

t.test('calls are signed with credentials from instance metadata (IMDSv2), session token included', async (t) => {
  const { createServer } = await import('node:http');
  const { once } = await import('node:events');
  const md = createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') return void res.writeHead(200).end('tok');
    if (req.headers['x-aws-ec2-metadata-token'] !== 'tok') return void res.writeHead(401).end();
    if (req.url === '/latest/meta-data/iam/security-credentials/') return void res.writeHead(200).end('role');
    if (req.url === '/latest/meta-data/iam/security-credentials/role')
      return void res.writeHead(200).end(JSON.stringify({ Code: 'Success', AccessKeyId: 'ASIAFROMIMDS', SecretAccessKey: 'k', Token: 'imds-session', Expiration: new Date(Date.now() + 3600_000).toISOString() }));
    res.writeHead(404).end();
  });
  md.listen(0, '127.0.0.1');
  await once(md, 'listening');
  t.teardown(() => {
    md.closeAllConnections();
    md.close();
  });
  const proxy = new LogsProxy(moto.port);
  const url = await proxy.start();
  t.teardown(() => proxy.stop());
  const env = { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: url, AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${(md.address() as { port: number }).port}` };
  const sink = new CloudWatchLogsSink({ logGroup: 'g-imds', logStream: 's', env, lingerMs: 0 });
  const router = new LogRouter({ sinks: [sink], queueBytes: 1 << 20, ratePerS: 1e9, sampleEvery: 1, applianceId: 'a' });
  router.emit(anomaly(1));
  await router.close(30_000);
  t.ok(proxy.calls.length >= 3);
  for (const c of proxy.calls) {
    t.match(String(c.headers.authorization), /^AWS4-HMAC-SHA256 Credential=ASIAFROMIMDS\/\d{8}\/eu-west-1\/logs\/aws4_request/);
    t.equal(c.headers['x-amz-security-token'], 'imds-session');
  }
  t.match(sink.stats(), { sentEvents: 1 });
});

t.test('shutdown: a batch waiting in backoff is given up at the flush deadline and counted, queued events too', async (t) => {
  const proxy = new LogsProxy(moto.port);
  const url = await proxy.start();
  t.teardown(() => proxy.stop());
  for (let i = 0; i < 5; i++) proxy.plan.push({ status: 503, type: 'ServiceUnavailableException' });
  // Backoff of up to an hour: only the deadline can end this shutdown.
  const sink = new CloudWatchLogsSink({ logGroup: 'g-shutdown', logStream: 's', env: { ...baseEnv, AWS_ENDPOINT_URL: url }, lingerMs: 0, retryBaseMs: 3_600_000, retryMaxMs: 3_600_000 });
  const router = new LogRouter({ sinks: [sink], queueBytes: 1 << 20, ratePerS: 1e9, sampleEvery: 1, applianceId: 'a' });
  router.emit(anomaly(1));
  await new Promise<void>((resolve) => {
    const check = (): void => void (proxy.puts().length === 1 ? resolve() : setTimeout(check, 10));
    check();
  });
  router.emit(anomaly(2));
  await router.close(200);
  t.match(sink.stats(), { failedEvents: 1, sentEvents: 0 });
  t.match(router.stats(), { sinks: { cloudwatch: { droppedAtShutdown: 1 } } });
});

t.test('from the settings: stdout, a rotating file and CloudWatch at once, each with every event', async (t) => {
  const { resolveSettings } = await import('../../src/config/settings.js');
  const { createVerdictLog } = await import('../../src/log/verdict-log.js');
  const { Writable } = await import('node:stream');
  const { readFileSync } = await import('node:fs');
  const dir = t.testdir({});
  const settings = resolveSettings({ logFile: `${dir}/verdicts.log`, cloudwatchLogGroup: '/gwlb/all-sinks', cloudwatchLogStream: 'appliance-1' }, {});
  const out: string[] = [];
  const stdout = new Writable({ write: (c: Buffer, _e, cb) => (out.push(c.toString()), cb()) });
  const router = await createVerdictLog(settings, { env: { ...baseEnv, AWS_ENDPOINT_URL: moto.url }, warn: (m, f) => t.fail(`${m} ${JSON.stringify(f)}`), stdout });
  for (let i = 0; i < 50; i++) router.emit(anomaly(i));
  await router.close(30_000);
  const stdoutLines = out.join('').split('\n').filter((l) => l !== '');
  const fileLines = readFileSync(`${dir}/verdicts.log`, 'utf8').split('\n').filter((l) => l !== '');
  const cloud = await readStream('/gwlb/all-sinks', 'appliance-1');
  t.equal(stdoutLines.length, 50);
  t.same(fileLines, stdoutLines, 'the file has the same lines');
  t.same(cloud, stdoutLines, 'CloudWatch has the same messages');
});
