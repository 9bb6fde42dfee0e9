/**
 * Settings and signals of the running appliance, each through a real process and real loopback UDP: the flow cap
 * (--max-flows), the kernel receive-queue drop counter under overload, the UDP return mode, and SIGHUP reloads.
 */
import t from 'tap';
import type { Socket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAppliance, randomPort, randomLoopback, getJson, type Appliance } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';
import { flowDatagram, gwlbStandIn, sendTo } from '../helpers/gwlb.js';

const APPLIANCE = '127.0.0.1';

const datagram = flowDatagram;
const send = (sock: Socket, d: Buffer, port: number): Promise<void> => sendTo(sock, d, port, APPLIANCE);

async function stats(app: Appliance): Promise<Record<string, unknown>> {
  return (await getJson(`${app.statsUrl}/stats`)).body;
}

const common = (port: number): string[] => ['--listen', APPLIANCE, '--port', String(port), '--admin-listen', '127.0.0.1:0', '--workers', '1'];

t.test('--max-flows caps the running flow table: older flows are evicted, traffic keeps flowing', async (t) => {
  const port = randomPort();
  const app = await startAppliance([...common(port), '--max-flows', '16', '--policy', 'policies/default.yaml']);
  t.teardown(() => app.stop());
  const gwlb = await gwlbStandIn(randomLoopback());
  t.teardown(() => gwlb.close());
  for (let f = 0; f < 100; f++) await send(gwlb.sock, datagram(f), port);
  await waitFor(() => gwlb.returns.size === 100, 5000, 'all 100 flows returned');
  const s = await stats(app);
  t.ok((s['flows_active'] as number) <= 16, `flows_active ${String(s['flows_active'])} ≤ 16`);
  t.ok((s['flow_creations'] as number) >= 100, 'every flow was created');
  await waitFor(async () => ((await stats(app))['flow_evictions'] as number) >= 84, 3000, 'evictions reported');
});

t.test('kernel receive-queue drops are counted: a stopped appliance with a small buffer overflows, and every datagram is either returned or counted', async (t) => {
  const port = randomPort();
  const app = await startAppliance([...common(port), '--socket-buffer-bytes', '65536', '--health-interval-ms', '60000', '--policy', 'policies/default.yaml']);
  t.teardown(() => app.stop());
  const gwlb = await gwlbStandIn(randomLoopback());
  t.teardown(() => gwlb.close());
  const before = (await stats(app))['drops'] as Record<string, number>;
  t.equal(before['kernel_rx_queue_full'], 0);

  // Stopped, the appliance reads nothing: the 64 KiB queue fills after a few dozen datagrams and the rest overflow.
  process.kill(app.pid, 'SIGSTOP');
  const SENT = 2000;
  try {
    for (let i = 0; i < SENT; i++) await send(gwlb.sock, datagram(i % 50, `overload ${i}`), port);
  } finally {
    process.kill(app.pid, 'SIGCONT');
  }
  // The kernel reports the cumulative drop count (SO_RXQ_OVFL) with the next datagram it queues. Right after
  // SIGCONT the queue may still be full (the appliance has not run yet), so keep sending one more datagram until
  // one comes back; from then on nothing is dropped.
  const after: string[] = [];
  await waitFor(
    async () => {
      const d = datagram(99, `after the overload ${after.length}`);
      after.push(d.toString('hex'));
      await send(gwlb.sock, d, port);
      return after.some((h) => gwlb.returns.has(h));
    },
    10_000,
    'a datagram after the overload returned',
  );
  const sent = SENT + after.length;
  const dropsNow = async (): Promise<number> => ((await stats(app))['drops'] as Record<string, number>)['kernel_rx_queue_full'] as number;
  await waitFor(async () => gwlb.count() + (await dropsNow()) >= sent, 10_000, 'every datagram returned or counted as dropped');
  const drops = await dropsNow();
  const returned = gwlb.count();
  t.ok(drops > 0, `kernel drops counted (${drops})`);
  t.ok(returned < SENT, `not everything came back (${returned})`);
  // Nothing is lost silently: what did not come back was counted as dropped by the kernel (self-test probes may add one).
  t.ok(returned + drops <= sent + 2, `returned ${returned} + dropped ${drops} accounts for the ${sent} sent`);
});

t.test('--return-mode udp answers from the appliance port to the sender address on port 6081, GENEVE bytes unchanged', async (t) => {
  const port = randomPort();
  const app = await startAppliance([...common(port), '--return-mode', 'udp', '--policy', 'policies/default.yaml']);
  t.teardown(() => app.stop());
  // UDP mode sends to GWLB's address on 6081 from the appliance's own port (it cannot keep GWLB's source port).
  const gwlb = await gwlbStandIn(randomLoopback());
  t.teardown(() => gwlb.close());
  const d = datagram(7, 'udp return mode');
  await send(gwlb.sock, d, port);
  await waitFor(() => gwlb.returns.has(d.toString('hex')), 5000, 'the return');
  t.same(gwlb.returns.get(d.toString('hex')), { address: APPLIANCE, port }, 'from the appliance address and port, byte-identical');
});

t.test('SIGHUP reloads the policy; a broken file on SIGHUP is rejected and the running policy stays', async (t) => {
  const dir = t.testdir({ 'policy.yaml': 'version: 1\ndefault_action: pass\n' });
  const file = join(dir, 'policy.yaml');
  const port = randomPort();
  const app = await startAppliance([...common(port), '--policy', file]);
  t.teardown(() => app.stop());
  const gwlb = await gwlbStandIn(randomLoopback());
  t.teardown(() => gwlb.close());
  const generation = async (): Promise<number> => ((await stats(app))['policy'] as { generation: number }).generation;
  // Each reload loads the policy in a bounded worker thread (docs/policy.md, "Reload"): seconds on a busy machine.
  const logged = (msg: string, why: string): Record<string, unknown>[] => app.logs.filter((l) => l['msg'] === msg && l['why'] === why);

  t.equal(await generation(), 1);
  process.kill(app.pid, 'SIGHUP');
  await waitFor(() => logged('policy_reloaded', 'SIGHUP').length === 1, 30_000, 'reloaded on SIGHUP');
  t.equal(logged('policy_reloaded', 'SIGHUP')[0]?.['generation'], 2);
  t.equal(await generation(), 2, '/stats shows the new generation');

  const a = datagram(1, 'flow a');
  await send(gwlb.sock, a, port);
  await waitFor(() => gwlb.returns.has(a.toString('hex')), 3000, 'pass policy returns flow a');

  // A drop policy: new flows are dropped from the reload on (established flows keep their verdict).
  writeFileSync(file, 'version: 1\ndefault_action: drop\n');
  process.kill(app.pid, 'SIGHUP');
  await waitFor(async () => (await generation()) >= 3, 30_000, 'drop policy loaded');
  const gen = await generation();
  const b = datagram(2, 'flow b');
  await send(gwlb.sock, b, port);
  await waitFor(async () => (((await stats(app))['drops'] as Record<string, number>)['policy_drop'] as number) >= 1, 3000, 'flow b dropped');
  t.notOk(gwlb.returns.has(b.toString('hex')), 'a new flow under the drop policy does not come back');

  // Broken file + SIGHUP: rejected with the reason, generation unchanged, drop policy still decides.
  writeFileSync(file, 'version: 1\ndefault_action: [\n');
  process.kill(app.pid, 'SIGHUP');
  await waitFor(() => logged('policy_reload_rejected', 'SIGHUP').length >= 1, 30_000, 'rejected on SIGHUP');
  t.equal(logged('policy_reload_rejected', 'SIGHUP')[0]?.['keptGeneration'], gen);
  t.equal(await generation(), gen, 'the running policy stays');
  const c = datagram(3, 'flow c');
  await send(gwlb.sock, c, port);
  await waitFor(async () => (((await stats(app))['drops'] as Record<string, number>)['policy_drop'] as number) >= 2, 3000, 'flow c dropped');
  t.notOk(gwlb.returns.has(c.toString('hex')), 'still decided by the last good policy');
});
