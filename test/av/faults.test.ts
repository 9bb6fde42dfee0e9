import t from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ClamdScanner } from '../../src/av/clamd.js';
import { ClamdCommandError } from '../../src/av/command.js';
import { eicarTestObject } from '../../src/av/eicar.js';
import { startTestClamd, tempDir } from '../helpers/clamd.js';

/** Settles with how long `p` took. */
async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await p;
  return { value, ms: performance.now() - start };
}

interface Mock {
  readonly server: Server;
  readonly port: number;
  /** Resolves when the first accepted connection has closed (the client destroyed it). */
  readonly firstClosed: Promise<void>;
  readonly connections: Socket[];
}

/** The one fake: a loopback peer that accepts and never answers (optionally never reads). */
async function hangingPeer(t: { teardown(fn: () => unknown): void }, opts: { read: boolean }): Promise<Mock> {
  const connections: Socket[] = [];
  let closed: () => void = () => {};
  const firstClosed = new Promise<void>((r) => (closed = r));
  const server = createServer({ pauseOnConnect: !opts.read }, (s) => {
    connections.push(s);
    s.on('error', () => {});
    if (opts.read) s.resume();
    if (connections.length === 1) s.on('close', () => closed());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of connections) s.destroy();
    server.close();
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr !== null ? addr.port : 0, firstClosed, connections };
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof addr === 'object' && addr !== null ? addr.port : 0;
}

t.test('clamd refusing connections: unreachable at once, well inside the connect deadline', async (t) => {
  const connectTimeoutMs = 30_000;
  const missing = `unix:${join(tempDir(t, 'gwi-nosock-'), 'clamd.sock')}`;
  for (const address of [missing, `tcp:127.0.0.1:${await closedPort()}`]) {
    const scanner = new ClamdScanner(address, { connectTimeoutMs });
    const scan = scanner.begin();
    scan.write(eicarTestObject());
    const { value, ms } = await timed(scan.end());
    t.match(value, { kind: 'not_scanned', reason: 'unreachable', detail: /ENOENT|ECONNREFUSED/ }, address);
    t.ok(ms < connectTimeoutMs, `answered from the refusal (${Math.round(ms)} ms), not the deadline`);
    t.equal(scanner.counters.notScanned.unreachable, 1);
    t.equal(scanner.counters.active, 0);
    await t.rejects(scanner.ping(), { reason: 'unreachable' }, 'PING says unreachable too');
  }
});

t.test('a clamd that accepts and never replies: timeout at the reply deadline, socket destroyed', async (t) => {
  const peer = await hangingPeer(t, { read: true });
  const replyTimeoutMs = 300;
  const scanner = new ClamdScanner(`tcp:127.0.0.1:${peer.port}`, { replyTimeoutMs });
  const scan = scanner.begin();
  scan.write(eicarTestObject());
  const { value, ms } = await timed(scan.end());
  t.match(value, { kind: 'not_scanned', reason: 'timeout', detail: /no reply/ });
  t.ok(ms >= replyTimeoutMs - 5, `not before the deadline (${Math.round(ms)} ms)`);
  t.ok(ms < replyTimeoutMs + 10_000, 'ended by the deadline, not by tap giving up');
  await peer.firstClosed;
  t.pass('the peer saw the connection closed');
  t.equal(scanner.counters.notScanned.timeout, 1);
  t.equal(scanner.counters.active, 0);
  const ping = await timed(scanner.ping().catch((e: unknown) => e));
  t.type(ping.value, ClamdCommandError);
  t.match(ping.value, { reason: 'timeout' }, 'PING is bounded by its deadline too');
});

t.test('a clamd that accepts and never reads: timeout at the write deadline, socket destroyed', async (t) => {
  const peer = await hangingPeer(t, { read: false });
  const writeTimeoutMs = 300;
  const scanner = new ClamdScanner(`tcp:127.0.0.1:${peer.port}`, { writeTimeoutMs, maxBufferedBytes: 64 * 1024 * 1024 });
  const scan = scanner.begin();
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let settled = false;
  void scan.result.then(() => (settled = true));
  // Bounded: loopback buffers take a few MiB at most before the write deadline ends the scan.
  for (let i = 0; i < 1000 && !settled; i++) if (!scan.write(chunk)) await scan.waitDrain();
  const r = await scan.end();
  t.match(r, { kind: 'not_scanned', reason: 'timeout', detail: /took no bytes/ });
  // Now read what was sent: the peer reaches the end of the stream only if we closed it.
  for (const s of peer.connections) s.resume();
  await peer.firstClosed;
  t.pass('the peer saw the connection closed');
});

t.test('clamd killed mid-scan: scanner_error at once, not a timeout', async (t) => {
  for (const which of ['unix', 'tcp'] as const) {
    await t.test(which, async (t) => {
      const c = await startTestClamd(t);
      const replyTimeoutMs = 30_000;
      const scanner = new ClamdScanner(which === 'unix' ? c.unixAddress : c.tcpAddress, { replyTimeoutMs, writeTimeoutMs: replyTimeoutMs });
      const scan = scanner.begin();
      scan.write(Buffer.alloc(100_000, 0x61));
      await scan.waitDrain();
      // The connection is up and bytes went out: now clamd dies.
      await c.stop('SIGKILL');
      scan.write(eicarTestObject());
      const { value, ms } = await timed(scan.end());
      t.match(value, { kind: 'not_scanned', reason: /^(scanner_error|unreachable)$/ });
      t.ok(ms < replyTimeoutMs, `ended by the lost connection (${Math.round(ms)} ms), not the deadline`);
      t.equal(scanner.counters.active, 0);
      const next = scanner.begin();
      t.match(await next.end(), { kind: 'not_scanned', reason: 'unreachable' }, 'the next scan finds nobody listening');
    });
  }
});

t.test('pool overload: past maxConcurrent + maxQueued a scan is refused as overloaded, and counted', async (t) => {
  const clamd = await startTestClamd(t);
  const scanner = new ClamdScanner(clamd.unixAddress, { maxConcurrent: 1, maxQueued: 1, queueTimeoutMs: 30_000 });
  const first = scanner.begin();
  const second = scanner.begin();
  const third = scanner.begin();
  t.equal(scanner.counters.active, 1);
  t.equal(scanner.counters.queued, 1);
  t.match(await third.result, { kind: 'not_scanned', reason: 'overloaded' }, 'refused at once');
  t.equal(scanner.counters.notScanned.overloaded, 1);
  second.write(eicarTestObject());
  const secondResult = second.end();
  first.write(Buffer.from('clean'));
  t.same(await first.end(), { kind: 'clean' });
  t.same(await secondResult, { kind: 'infected', signature: 'GWI.Test.EICAR.UNOFFICIAL' }, 'the queued scan ran when the slot freed, with its buffered bytes');
  t.equal(scanner.counters.active, 0);
  t.equal(scanner.counters.queued, 0);

  await t.test('a queued scan waits at most queueTimeoutMs', async (t) => {
    const peer = await hangingPeer(t, { read: true });
    const s = new ClamdScanner(`tcp:127.0.0.1:${peer.port}`, { maxConcurrent: 1, maxQueued: 4, queueTimeoutMs: 200, replyTimeoutMs: 30_000 });
    const holder = s.begin();
    const waiter = s.begin();
    t.match(await waiter.end(), { kind: 'not_scanned', reason: 'overloaded', detail: /no free clamd connection/ });
    t.equal(s.counters.queued, 0);
    t.equal(s.counters.active, 1, 'the holder still has its connection');
    void holder;
  });

  await t.test('a scan that buffers past maxBufferedBytes is overloaded', async (t) => {
    const peer = await hangingPeer(t, { read: true });
    const s = new ClamdScanner(`tcp:127.0.0.1:${peer.port}`, { maxConcurrent: 1, highWaterBytes: 1024, maxBufferedBytes: 4096, queueTimeoutMs: 30_000 });
    s.begin();
    const queued = s.begin();
    t.equal(queued.write(Buffer.alloc(2000)), false, 'above the high-water mark: wait');
    queued.write(Buffer.alloc(3000));
    t.match(await queued.result, { kind: 'not_scanned', reason: 'overloaded', detail: /waiting for clamd/ });
  });
});
