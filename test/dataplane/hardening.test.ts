/**
 * Who may talk to the appliance and how it starts, with real appliance processes on loopback (issue 15):
 *  - a second instance on the same GENEVE address and port refuses to start and names the first one's PID;
 *    the lock does not outlive a kill -9;
 *  - the loop guard: a GENEVE datagram from the appliance's own address is not returned to itself (on 6081 that
 *    was an endless loop) and is counted;
 *  - --gwlb-sources: a datagram from another source gets nothing back and is counted; an allowed one works;
 *  - any start failure exits non-zero with one start_failed line and releases what it bound.
 */
import t from 'tap';
import type { Test } from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Udp } from '../../src/packet/build.js';
import { ipv4ToU32 } from '../../src/packet/address.js';
import { loadNative } from '../../src/dataplane/native.js';
import { startAppliance, randomPort, randomLoopback, getJson, runToExit, type Appliance } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const native = loadNative();
const POLICY = 'policies/default.yaml';
const base = (listen: string, port: number): string[] => ['--listen', listen, '--port', String(port), '--admin-listen', '127.0.0.1:0', '--workers', '1', '--health-interval-ms', '100', '--policy', POLICY];

async function udpSocket(t: Test, addr: string, port = 0): Promise<Socket> {
  const s = createSocket('udp4');
  s.bind(port, addr);
  await once(s, 'listening');
  t.teardown(() => s.close());
  return s;
}

function sendTo(s: Socket, d: Buffer, port: number, addr: string): Promise<void> {
  return new Promise((resolve, reject) => s.send(d, port, addr, (err) => (err ? reject(err) : resolve())));
}

async function stats(app: Appliance): Promise<Record<string, unknown>> {
  return (await getJson(`${app.statsUrl}/stats`)).body;
}

const drops = (s: Record<string, unknown>): Record<string, number> => s['drops'] as Record<string, number>;
/** Start and exit bounds: generous, because a loaded 2-core machine starts Node slowly; they only catch hangs. */
const START_MS = 60_000;
const startFailed = (logs: Record<string, unknown>[]): Record<string, unknown>[] => logs.filter((l) => l['msg'] === 'start_failed');

t.test('a second instance on the same address and port refuses to start, naming the first PID', async (t) => {
  const listen = randomLoopback();
  const port = randomPort();
  const first = await startAppliance(base(listen, port), {}, START_MS);
  t.teardown(() => first.stop('SIGKILL'));
  t.ok(first.logs.some((l) => l['msg'] === 'gwlb_sources_unrestricted' && l['level'] === 'warn'), 'no --gwlb-sources: a warning at start');

  for (const second of [listen, '0.0.0.0']) {
    const r = await runToExit(base(second, port), START_MS);
    t.equal(r.killed, false, `${second}: exits by itself`);
    t.not(r.code, 0, `${second}: exit code ${r.code}`);
    const lines = startFailed(r.logs);
    t.equal(lines.length, 1, `${second}: one start_failed line`);
    t.equal(lines[0]?.['holderPid'], first.pid, `${second}: names the holder's PID`);
    t.match(String(lines[0]?.['reason']), new RegExp(`pid ${first.pid}`), `${second}: and says it in words`);
    t.notOk(r.logs.some((l) => 'raw' in l), `${second}: no stack trace or other unstructured output`);
  }
  t.equal(first.proc.exitCode, null, 'the first instance keeps running');
  t.equal((await getJson(`${first.adminUrl}/healthz`)).status, 200, 'and healthy: it saw none of the second one');

  // kill -9 leaves no stale lock: the kernel drops it with the process.
  await first.stop('SIGKILL');
  const third = await startAppliance(base(listen, port), {}, START_MS);
  t.teardown(() => third.stop());
  t.pass('after kill -9 of the holder a new instance starts on the same address and port');
  t.equal(await third.stop(), 0);
});

t.test('loop guard: a GENEVE datagram from the appliance\'s own address on port 6081 is not returned to itself, and is counted', async (t) => {
  // Port 6081 for real: returns go to <source>:6081, so a datagram from our own address would come back to us.
  const own = randomLoopback();
  const app = await startAppliance(base(own, 6081), {}, START_MS);
  t.teardown(() => app.stop());
  await waitFor(async () => (await getJson(`${app.adminUrl}/healthz`)).status === 200, 30_000, 'healthy');
  const cap = native.openRawUdpRecv(4 << 20);
  t.teardown(() => native.close(cap));
  const sender = await udpSocket(t, own);
  const datagram = encodeGeneve({ flowCookie: 0x100b }, buildIPv4Udp({ src: '10.31.0.1', dst: '10.31.0.2', srcPort: 5000, dstPort: 53, payload: Buffer.from('loop me') }));
  const s0 = await stats(app);
  await sendTo(sender, datagram, 6081, own);
  await waitFor(async () => (drops(await stats(app))['loop_guard'] ?? 0) >= 1, 20_000, 'loop_guard counted');
  const s1 = await stats(app);
  t.equal(drops(s1)['loop_guard'], 1, 'counted once');
  t.equal((s1['passed'] as number) - (s0['passed'] as number), 0, 'never passed to the chain');
  const m = await (await fetch(`${app.statsUrl}/metrics`)).text();
  t.match(m, /gwlb_inspector_drops\{reason="loop_guard"\} 1/, 'visible in /metrics');
  // What crossed loopback: the one datagram the test sent, nothing returned.
  const pkt = Buffer.alloc(65536);
  const info = new Float64Array(3);
  let copies = 0;
  for (let n; (n = native.recvOne(cap, pkt, info)) > 0; ) if (n === 28 + datagram.length && pkt.subarray(28, n).equals(datagram)) copies++;
  t.equal(copies, 1, 'exactly one copy on the wire: the one we sent');
  t.equal((await getJson(`${app.adminUrl}/healthz`)).status, 200, 'the self-test (also from our own address) still works');
});

t.test('--gwlb-sources: a sender outside the list gets nothing back and is counted; an allowed sender works', async (t) => {
  const allowed = randomLoopback();
  let denied = randomLoopback();
  while (denied.split('.').slice(0, 3).join('.') === allowed.split('.').slice(0, 3).join('.')) denied = randomLoopback();
  const port = randomPort();
  const cidr = `${allowed.split('.').slice(0, 3).join('.')}.0/24`;
  const app = await startAppliance([...base('127.0.0.1', port), '--gwlb-sources', cidr], {}, START_MS);
  t.teardown(() => app.stop());
  t.notOk(app.logs.some((l) => l['msg'] === 'gwlb_sources_unrestricted'), 'no warning when the list is set');
  const got = { allowed: [] as Buffer[], denied: [] as Buffer[] };
  const returnsAllowed = await udpSocket(t, allowed, 6081);
  const returnsDenied = await udpSocket(t, denied, 6081);
  returnsAllowed.on('message', (m) => got.allowed.push(m));
  returnsDenied.on('message', (m) => got.denied.push(m));
  const fromAllowed = await udpSocket(t, allowed);
  const fromDenied = await udpSocket(t, denied);
  const d = (tag: string) => encodeGeneve({ flowCookie: 0x5e }, buildIPv4Udp({ src: '10.32.0.1', dst: '10.32.0.2', srcPort: 5000, dstPort: 53, payload: Buffer.from(tag) }));
  const before = drops(await stats(app))['gwlb_source_not_allowed'] ?? 0;
  for (let i = 0; i < 5; i++) await sendTo(fromDenied, d(`denied ${i}`), port, '127.0.0.1');
  await sendTo(fromAllowed, d('allowed'), port, '127.0.0.1');
  await waitFor(() => got.allowed.length === 1, 20_000, 'the allowed sender\'s return');
  t.ok(got.allowed[0]?.equals(d('allowed')), 'the allowed datagram came back intact');
  await waitFor(async () => (drops(await stats(app))['gwlb_source_not_allowed'] ?? 0) - before === 5, 20_000, 'denied datagrams counted');
  t.equal(got.denied.length, 0, 'nothing came back to the denied sender');
  t.equal(ipv4ToU32(denied) >>> 8 === ipv4ToU32(allowed) >>> 8, false, 'the denied sender really is outside the /24');
});

t.test('a taken admin port: exit non-zero with one start_failed line, the GENEVE port and the lock released', async (t) => {
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.teardown(() => taken.close());
  const adminPort = (taken.address() as AddressInfo).port;
  const listen = randomLoopback();
  const port = randomPort();
  const r = await runToExit(['--listen', listen, '--port', String(port), '--admin-listen', `127.0.0.1:${adminPort}`, '--workers', '2', '--policy', POLICY], START_MS);
  t.equal(r.killed, false, 'exits by itself (no half-started appliance left running)');
  t.equal(r.code, 1);
  const lines = startFailed(r.logs);
  t.equal(lines.length, 1, 'exactly one start_failed line');
  t.match(lines[0], { level: 'error', step: 'admin_listener', code: 'EADDRINUSE' });
  t.notOk(r.logs.some((l) => 'raw' in l), 'no stack trace');
  // The GENEVE port is free: a plain bind (no SO_REUSEPORT, so it would fail next to any leftover) succeeds.
  const probe = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind(port, listen, () => resolve());
  });
  probe.close();
  t.pass(`UDP ${listen}:${port} can be bound again`);
  const again = await startAppliance(base(listen, port), {}, START_MS);
  t.equal(await again.stop(), 0, 'and the instance lock is free: a new appliance starts on it');
});

t.test('an invalid --gwlb-sources: exit 2 with one start_failed line naming the flag', async (t) => {
  const r = await runToExit(['--listen', randomLoopback(), '--port', String(randomPort()), '--admin-listen', '127.0.0.1:0', '--gwlb-sources', '10.0.0.0/33', '--policy', POLICY], START_MS);
  t.equal(r.code, 2);
  const lines = startFailed(r.logs);
  t.equal(lines.length, 1);
  t.match(lines[0], { step: 'settings', reason: /--gwlb-sources/ });
});

t.test('an invalid policy: exit 2 with one start_failed line', async (t) => {
  const dir = t.testdir({});
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'version: 1\nrules: [ { nonsense: true } ]\n');
  const r = await runToExit(['--listen', randomLoopback(), '--port', String(randomPort()), '--admin-listen', '127.0.0.1:0', '--workers', '1', '--policy', bad], START_MS);
  t.equal(r.code, 2);
  t.equal(startFailed(r.logs).length, 1);
  t.match(startFailed(r.logs)[0], { step: 'policy' });
});
