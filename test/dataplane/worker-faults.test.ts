/**
 * Faults of one worker thread in the running appliance, injected with --test-faults (a thread cannot be stopped or
 * killed from outside): /healthz says 503 while a worker stalls and 200 again when it recovers; a crashed worker is
 * restarted on the same socket while the other worker keeps passing traffic, and afterwards every flow passes again.
 */
import t from 'tap';
import { startAppliance, randomPort, randomLoopback, getJson, type Appliance } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';
import { flowDatagram, gwlbStandIn, sendTo } from '../helpers/gwlb.js';

const APPLIANCE = '127.0.0.1';

async function health(app: Appliance): Promise<{ status: number; body: Record<string, unknown> }> {
  return getJson(`${app.adminUrl}/healthz`);
}

t.test('a stalled worker (thread blocked, no heartbeat) makes /healthz 503 naming it, then 200 when it recovers', async (t) => {
  const port = randomPort();
  const app = await startAppliance(['--listen', APPLIANCE, '--port', String(port), '--workers', '2', '--health-interval-ms', '100', '--test-faults', '0:stall:1500:4000', '--policy', 'policies/default.yaml']);
  t.teardown(() => app.stop());
  await waitFor(async () => (await health(app)).status === 200, 10_000, 'healthy at first');
  await waitFor(async () => (await health(app)).status === 503, 10_000, 'unhealthy while worker 0 stalls');
  const sick = await health(app);
  t.match(JSON.stringify(sick.body['reasons']), /worker 0/, `the reason names the stalled worker: ${JSON.stringify(sick.body)}`);
  t.notMatch(JSON.stringify(sick.body['reasons']), /worker 1 not running/, 'the other worker is not blamed');
  await waitFor(async () => (await health(app)).status === 200, 15_000, 'healthy again after the stall');
  const s = (await getJson(`${app.statsUrl}/stats`)).body;
  t.same((s['workers'] as { restarts: number }[]).map((w) => w.restarts), [0, 0], 'a stall is not a crash: nothing was restarted');
});

t.test('a crashed worker is restarted; the other keeps passing traffic meanwhile, and all flows pass afterwards', async (t) => {
  const port = randomPort();
  const app = await startAppliance(['--listen', APPLIANCE, '--port', String(port), '--workers', '2', '--health-interval-ms', '100', '--test-faults', '1:crash:2000', '--policy', 'policies/default.yaml']);
  t.teardown(() => app.stop());
  const gwlb = await gwlbStandIn(randomLoopback());
  t.teardown(() => gwlb.close());
  const flows = 64;
  /** Sends one datagram per flow tagged `tag`; returns how many of them came back (so far). */
  const round = async (tag: string): Promise<number> => {
    for (let f = 0; f < flows; f++) await sendTo(gwlb.sock, flowDatagram(f, `${tag}-${f}`), port, APPLIANCE);
    await new Promise((r) => setTimeout(r, 300));
    return returned(tag);
  };
  // Counted by payload: datagrams sent while worker 1 was down wait in its socket and come back after its restart.
  const returned = (tag: string): number => {
    const mark = Buffer.from(`${tag}-`).toString('hex');
    return [...gwlb.returns.keys()].filter((k) => k.includes(mark)).length;
  };
  await round('before');
  await waitFor(() => returned('before') === flows, 10_000, 'every flow passes before the crash');
  t.equal(returned('before'), flows, 'before the crash every flow passes');
  await waitFor(() => app.logs.some((l) => l['msg'] === 'worker_exit' && l['worker'] === 1), 15_000, 'worker 1 crashed');
  // While worker 1 is down (its restart is backed off), the flows steered to worker 0 still pass.
  const during = await round('during');
  t.ok(during > 0 && during <= flows, `flows on the surviving worker kept passing (${during} of ${flows})`);
  await waitFor(async () => {
    const s = (await getJson(`${app.statsUrl}/stats`)).body;
    const w = (s['workers'] as { alive: boolean; restarts: number }[])[1];
    return w?.alive === true && w.restarts === 1;
  }, 15_000, 'worker 1 restarted');
  await waitFor(async () => (await health(app)).status === 200, 15_000, 'healthy after the restart');
  await round('after');
  await waitFor(() => returned('after') === flows, 10_000, 'every flow passes after the restart');
  t.equal(returned('after'), flows, 'after the restart every flow passes again');
});
