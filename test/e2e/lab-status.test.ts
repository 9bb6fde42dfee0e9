/**
 * `lab status` after an appliance of a real lab was killed: a readable NOT RUNNING line with its pid and log, not
 * the raw JSON the lab collected (it printed {"stopped":true} before).
 */
import t from 'tap';
import { runLab } from '../../src/cli/lab.js';
import { attachLab } from '../../src/lab/lab.js';
import { alive, cleanup, labNamespaces } from '../../src/lab/netns.js';
import { waitFor } from '../helpers/wait.js';
import { PASS_ALL_POLICY, e2ePrerequisites, uniqueLabId } from './fixtures/lab-helpers.js';

const problems = await e2ePrerequisites([]);
if (problems.length > 0) {
  t.fail(`the lab tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('stat');
  const ns = labNamespaces(id);
  t.teardown(async () => {
    await runLab(['down', '--id', id], () => undefined);
    await cleanup(ns.prefix);
  });

  t.test('lab status after the appliance was killed', async (t) => {
    let out = '';
    const print = (s: string): void => {
      out += `${s}\n`;
    };
    t.equal(await runLab(['up', '--id', id, '--policy', PASS_ALL_POLICY], print), 0, out);
    const lab = attachLab(id);
    const pid = lab?.appliances[0]?.pid ?? -1;
    t.ok(pid > 0 && alive(pid), 'the appliance runs');
    out = '';
    t.equal(await runLab(['status', '--id', id], print), 0);
    t.match(out, /appliance appliance1: rx_packets \d+/, 'counters while it runs');

    process.kill(pid, 'SIGKILL');
    await waitFor(() => !alive(pid), 10_000, 'the appliance is gone');
    out = '';
    t.equal(await runLab(['status', '--id', id], print), 0);
    const line = out.split('\n').find((l) => l.includes('appliance appliance1:') && !l.includes('GENEVE')) ?? '';
    t.match(line, new RegExp(`appliance appliance1: NOT RUNNING \\(pid ${pid} is gone\\): it logged no error, so it was killed or crashed; log .*appliance1\\.log`));
    t.notMatch(line, /[{}]/, 'no raw JSON');
  });
}
