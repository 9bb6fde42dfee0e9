// Measures the clamdjs 1.0.2 behaviours that decided what our adapter (src/av) takes from it, against a real
// clamd started here with rules/clamav, and loopback mock peers. Prints JSON; README.md "Dependency notes" cites it.
// Run: npm run build && node bench/clamdjs-defects.mjs
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { startLocalClamd } from '../dist/av/local-clamd.js';
import { eicarTestObject } from '../dist/av/eicar.js';

const clamdjs = createRequire(import.meta.url)('clamdjs');
const repo = new URL('..', import.meta.url).pathname;
const T = 300; // the timeout we give clamdjs, ms

/** Settles `p` or reports it still pending after `ms`. */
function within(p, ms) {
  return Promise.race([
    p.then((v) => ({ settled: 'resolved', value: v }), (e) => ({ settled: 'rejected', error: e.code ?? e.message })),
    new Promise((r) => setTimeout(() => r({ settled: 'pending' }), ms)),
  ]);
}

/** A loopback server; `onConn(socket)` decides what it does. Reports whether the client closed each connection. */
async function mock(onConn) {
  const conns = [];
  const srv = createServer((s) => {
    const c = { closed: false };
    conns.push(c);
    s.on('close', () => (c.closed = true));
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { port: srv.address().port, conns, close: () => { srv.close(); } };
}

const dir = mkdtempSync(join(tmpdir(), 'gwi-clamdjs-'));
const clamd = await startLocalClamd({ dir, signaturesDir: join(repo, 'rules/clamav') });
const out = {};
try {
  // 1. Unix sockets: createConnection({ host, port }) only.
  out.unixSocket = await within(clamdjs.createScanner(clamd.socketPath, 1).scanBuffer(eicarTestObject(), T), 5 * T);

  // 2. A clamd that accepts and never answers: ping()'s timeout is socket.setTimeout without a listener.
  const hang = await mock(() => {});
  const ping = await within(clamdjs.ping('127.0.0.1', hang.port, T), 5 * T);
  out.pingOnHangingPeer = { waitedMs: 5 * T, ...ping, connectionStillOpen: hang.conns.some((c) => !c.closed) };
  const version = await within(clamdjs.version('127.0.0.1', hang.port, T), 5 * T);
  out.versionOnHangingPeer = { waitedMs: 5 * T, ...version };
  hang.close();

  // 3. A peer that closes without a reply.
  const closer = await mock((s) => s.on('data', (d) => { if (d.includes(Buffer.alloc(4))) s.end(); }));
  out.scanOnPeerClosingWithoutReply = await within(clamdjs.createScanner('127.0.0.1', closer.port).scanBuffer(Buffer.from('hello'), T), 5 * T);
  closer.close();
  const hangUp = await mock((s) => s.on('data', () => s.end()));
  out.pingOnPeerClosingWithoutReply = await within(clamdjs.ping('127.0.0.1', hangUp.port, T), 5 * T);
  out.versionOnPeerClosingWithoutReply = await within(clamdjs.version('127.0.0.1', hangUp.port, T), 5 * T);
  hangUp.close();

  // 4. Replies keep clamd's NUL.
  out.cleanReply = await within(clamdjs.createScanner('127.0.0.1', clamd.port).scanBuffer(Buffer.from('hello'), 5000), 5000);

  // 5. Streaming as bytes arrive: the timeout is one deadline from connect to reply, so a live object that takes
  //    longer than it to arrive fails although clamd is healthy.
  const live = new PassThrough();
  const liveScan = clamdjs.createScanner('127.0.0.1', clamd.port).scanStream(live, T);
  const started = Date.now();
  const feeder = setInterval(() => live.write(Buffer.alloc(1024, 0x61)), T / 5);
  const liveResult = await within(liveScan, 4 * T);
  clearInterval(feeder);
  live.end();
  out.slowLiveStream = { arrivingForMs: Date.now() - started, ...liveResult };

  // 6. (Not a defect) an empty chunk in the stream is dropped by the stream, not sent as a terminator frame.
  const split = new PassThrough();
  const splitScan = clamdjs.createScanner('127.0.0.1', clamd.port).scanStream(split, 5000);
  const e = eicarTestObject();
  split.write(e.subarray(0, 30));
  split.write(Buffer.alloc(0));
  split.write(e.subarray(30));
  split.end();
  out.eicarWithEmptyChunkBetween = await within(splitScan, 5000);

  // 7. No socket handle to destroy: aborting the source leaves the clamd connection open.
  const sink = await mock(() => {});
  const src = new PassThrough();
  const aborted = within(clamdjs.createScanner('127.0.0.1', sink.port).scanStream(src, 60_000), 3 * T);
  src.write(Buffer.from('partial'));
  await new Promise((r) => setTimeout(r, T));
  src.destroy(new Error('flow closed'));
  const abortedResult = await aborted;
  out.abortSource = { ...abortedResult, connectionStillOpenAfterMs: 2 * T, connectionStillOpen: sink.conns.some((c) => !c.closed) };
  sink.close();
} finally {
  await clamd.stop();
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ clamdjs: '1.0.2', timeoutGivenMs: T, ...out }, null, 2));
process.exit(0);
