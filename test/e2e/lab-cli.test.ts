/**
 * `gwlb-inspector lab up|status|down` as a person uses it: up returns with everything running in the background,
 * status reports it, down removes it all.
 */
import t from 'tap';
import { runLab } from '../../src/cli/lab.js';
import { cleanup, labNamespaces, listNamespaces, run } from '../../src/lab/netns.js';
import { PASS_ALL_POLICY, e2ePrerequisites, uniqueLabId } from './fixtures/lab-helpers.js';

const problems = await e2ePrerequisites(['ping']);
if (problems.length > 0) {
  t.fail(`the lab e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('cli');
  const ns = labNamespaces(id);
  t.teardown(async () => {
    await runLab(['down', '--id', id], () => undefined);
    await cleanup(ns.prefix);
  });

  t.test('lab up, status, traffic, down', async (t) => {
    let out = '';
    const print = (s: string): void => {
      out += `${s}\n`;
    };
    t.equal(await runLab(['up', '--id', id, '--policy', PASS_ALL_POLICY, '--appliances', '2'], print), 0, out);
    t.match(out, new RegExp(`ip netns exec ${ns.client}`), 'tells how to enter the client');
    t.match(out, /appliance appliance2: pid \d+/);

    const ping = await run('ip', ['netns', 'exec', ns.client, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.77.2.2']);
    t.equal(ping.code, 0, 'client reaches the server through the lab');

    out = '';
    t.equal(await runLab(['status', '--id', id], print), 0, out);
    t.match(out, /target appliance1 127\.0\.1\.1:6081 healthy/);
    t.match(out, /target appliance2 127\.0\.1\.2:6081 healthy/);
    t.match(out, /returns accepted, 0 rejected/);

    out = '';
    t.equal(await runLab(['status', '--id', id, '--json'], print), 0);
    const j = JSON.parse(out) as { emulator: { counters: { returnsAccepted: number } } };
    t.ok(j.emulator.counters.returnsAccepted >= 4, 'ping requests and replies came back through GWLB');

    out = '';
    t.equal(await runLab(['up', '--id', id, '--policy', PASS_ALL_POLICY], print), 1, 'a second up with the same id is refused');

    out = '';
    t.equal(await runLab(['down', '--id', id], print), 0);
    t.match(out, /is down/);
    t.same((await listNamespaces()).filter((n) => n.startsWith(ns.prefix)), []);
    out = '';
    t.equal(await runLab(['status', '--id', id], print), 1);
    t.match(out, /not up/);
  });

  t.test('usage errors', async (t) => {
    const print = (): void => undefined;
    t.equal(await runLab(['up', '--id', id, '--policy', '/nonexistent.yaml'], print), 2);
    t.equal(await runLab(['up', '--id', id, '--policy', PASS_ALL_POLICY, '--stickiness', '4-tuple'], print), 2);
    t.equal(await runLab(['frobnicate'], print), 2);
    t.equal(await runLab([], print), 0);
  });
}
