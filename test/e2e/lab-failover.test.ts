/**
 * GWLB failover through the lab with two real appliances: stop one; after the unhealthy threshold its new flows go
 * to the other; a stream that started on the survivor is undisturbed; a flow of the stopped appliance stays on it
 * (GWLB does not move existing flows by default) and so stops.
 */
import t from 'tap';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startLab, type ApplianceHandle, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces } from '../../src/lab/netns.js';
import { waitFor } from '../helpers/wait.js';
import { ECHO_PORT, HTTP_PORT, LAB_FIXTURES, PASS_ALL_POLICY, e2ePrerequisites, randomFile, sha256File, startServers, uniqueLabId, waitForOutput } from './fixtures/lab-helpers.js';

/** Chunks the stream client reports echoed so far (its latest progress line). */
function echoed(p: LabProcess): number {
  const all = [...p.stdout().matchAll(/"event":"progress","echoed":(\d+)/g)];
  return Number(all[all.length - 1]?.[1] ?? 0);
}

const HEALTH = { protocol: 'http', path: '/healthz', intervalMs: 200, timeoutMs: 150, healthyThreshold: 2, unhealthyThreshold: 2, matcherLow: 200, matcherHigh: 399 } as const;

const problems = await e2ePrerequisites(['curl']);
if (problems.length > 0) {
  t.fail(`the lab e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('fail');
  let lab: Lab | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });

  t.test('stop one of two appliances: new flows move, the survivor’s stream is undisturbed', async (t) => {
    lab = await startLab({ id, emulator: { health: HEALTH } });
    const a1 = await lab.startAppliance({ policy: PASS_ALL_POLICY, name: 'a1' });
    const a2 = await lab.startAppliance({ policy: PASS_ALL_POLICY, name: 'a2' });
    const byName: Record<string, ApplianceHandle> = { a1, a2 };
    const dir = t.testdir({});
    const page = randomFile(dir, 'page.bin', 64 * 1024);
    await startServers(lab, dir);

    /** Starts a stream and returns it with the target its flow landed on. */
    const startStream = async (durationMs: number): Promise<{ p: LabProcess; target: string; port: number }> => {
      const p = (lab as Lab).spawn('client', [process.execPath, join(LAB_FIXTURES, 'stream-client.mjs'), '10.77.2.2', String(ECHO_PORT), String(durationMs)]);
      const m = await waitForOutput(p, /"localPort":(\d+)/);
      const port = Number(m[1]);
      for (let i = 0; i < 100; i++) {
        const f = (await (lab as Lab).flows()).find((x) => x.protocol === 6 && x.a === '10.77.1.2' && x.aPort === port);
        if (f !== undefined) return { p, target: f.target, port };
        await delay(20);
      }
      throw new Error(`no flow for local port ${port}`);
    };

    // One stream per appliance: keep starting streams until both appliances carry one. Duration 0: each stream
    // runs until it is told to end (SIGUSR2), so the survivor's stream surely spans the whole failover.
    const streams: Record<string, { p: LabProcess; target: string; port: number }> = {};
    for (let i = 0; i < 20 && Object.keys(streams).length < 2; i++) {
      const s = await startStream(0);
      if (streams[s.target] === undefined) streams[s.target] = s;
      else await s.p.stop();
    }
    t.same(Object.keys(streams).sort(), ['a1', 'a2'], 'the emulator spreads flows over both appliances');
    const survivor = 'a1';
    const victim = 'a2';
    const survivorStream = streams[survivor] as { p: LabProcess; target: string; port: number };
    const victimStream = streams[victim] as { p: LabProcess; target: string; port: number };

    // Both streams carry data through their appliance before the failover.
    await waitForOutput(survivorStream.p, /"event":"progress"/, 30_000);
    await waitForOutput(victimStream.p, /"event":"progress"/, 30_000);
    const stoppedAt = Date.now();
    await (byName[victim] as ApplianceHandle).stop();
    // Outcome, not speed: the health checker notices the stop. How long it took is a diagnostic (the threshold logic
    // itself is test/lab/health.test.ts's, on an injected clock); a loaded machine stretches any stopwatch.
    await lab.waitForTarget(victim, 'unhealthy', 60_000);
    t.comment(`the stopped appliance was marked unhealthy after ${Date.now() - stoppedAt} ms (2 failed checks at ${HEALTH.intervalMs} ms)`);
    const echoedAtFailover = echoed(survivorStream.p);

    const victimBefore = (await lab.emulatorStatus()).targets.find((x) => x.name === victim);
    // 20 new flows: all must work, so none may have gone to the stopped appliance.
    for (let i = 0; i < 20; i++) {
      const r = await lab.exec('client', ['curl', '-sS', '--fail', '--max-time', '5', '-o', join(dir, `got${i}.bin`), `http://10.77.2.2:${HTTP_PORT}/page.bin`], {
        timeoutMs: 10_000,
      });
      t.equal(r.code, 0, `new flow ${i}: ${r.stderr}`);
      t.equal(sha256File(join(dir, `got${i}.bin`)), sha256File(page));
    }
    const flows = await lab.flows();
    const newHttpFlows = flows.filter((f) => f.protocol === 6 && f.bPort === HTTP_PORT);
    t.equal(newHttpFlows.length, 20);
    t.ok(
      newHttpFlows.every((f) => f.target === survivor),
      'every new flow went to the survivor',
    );

    // The survivor's stream went on after the failover: more echoes than it had when the victim was marked unhealthy.
    await waitFor(() => echoed(survivorStream.p) > echoedAtFailover, 30_000, 'the survivor stream to echo after the failover').catch(() => undefined);
    t.ok(echoed(survivorStream.p) > echoedAtFailover, `the survivor's stream kept flowing after the failover (${echoedAtFailover} chunks echoed at failover, ${echoed(survivorStream.p)} later)`);
    survivorStream.p.child.kill('SIGUSR2');
    await survivorStream.p.exited;
    const done = JSON.parse(survivorStream.p.stdout().trim().split('\n').pop() ?? '{}') as {
      event: string;
      sent: number;
      echoed: number;
      intact: boolean;
      maxGapMs: number;
    };
    t.equal(done.event, 'done');
    t.ok(done.sent > echoedAtFailover, `${done.sent} chunks sent`);
    t.equal(done.echoed, done.sent, 'every chunk echoed');
    t.ok(done.intact, 'echo intact');
    t.comment(`longest pause between echoes of the survivor's stream: ${done.maxGapMs} ms`);
    const sFlow = (await lab.flows()).find((f) => f.aPort === survivorStream.port && f.protocol === 6);
    t.equal(sFlow?.target, survivor, 'survivor stream stayed on its appliance');

    // GWLB keeps existing flows on their target even when it is unhealthy: the victim's stream is still sent there.
    const vFlow = (await lab.flows()).find((f) => f.aPort === victimStream.port && f.protocol === 6);
    t.equal(vFlow?.target, victim, 'the stopped appliance keeps its existing flow (no rebalance)');
    const victimAfter = (await lab.emulatorStatus()).targets.find((x) => x.name === victim);
    t.ok((victimAfter?.encapsulatedPackets ?? 0) > (victimBefore?.encapsulatedPackets ?? 0), 'packets of that flow still go to the stopped appliance');
    t.equal(victimAfter?.returnsAccepted, victimBefore?.returnsAccepted, 'and nothing comes back from it');
    await victimStream.p.stop();

    const status = await lab.emulatorStatus();
    t.equal(status.returnsRejectedTotal, 0, `no return rejected: ${JSON.stringify(status.counters.returnsRejected)}`);
  });
}
