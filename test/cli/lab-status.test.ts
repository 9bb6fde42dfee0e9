/**
 * `lab status` when an appliance is gone: a readable line (NOT RUNNING, its pid, the last error it logged, its log
 * file), never the raw JSON the lab collected. Through a real lab whose appliance is killed, and from the log of an
 * appliance that really failed to start.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applianceStatusLine, runLab } from '../../src/cli/lab.js';
import { attachLab } from '../../src/lab/lab.js';
import { alive, cleanup, labNamespaces } from '../../src/lab/netns.js';
import { CLI, REPO } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';
import { PASS_ALL_POLICY, e2ePrerequisites, uniqueLabId } from '../e2e/fixtures/lab-helpers.js';

t.test('an appliance that failed to start: its start_failed reason, from its real log', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'version: 1\ndefault_action: permit\n' });
  const r = spawnSync(process.execPath, [CLI, 'run', '--policy', join(dir, 'bad.yaml'), '--port', '1'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 2, 'the appliance refused the policy');
  const log = join(dir, 'appliance1.log');
  writeFileSync(log, r.stderr);
  const line = applianceStatusLine('appliance1', { stopped: true }, { pid: 4242, logFile: log });
  t.match(line, /^appliance appliance1: NOT RUNNING \(pid 4242 is gone\): last error: start_failed \(step policy, policy .*bad\.yaml is invalid/);
  t.match(line, new RegExp(`log ${log.replace(/[.]/g, '\\.')}`));
  t.notMatch(line, /[{}]/, 'no JSON');
});

t.test('a running appliance whose stats listener does not answer, or answers something else', async (t) => {
  t.match(applianceStatusLine('a1', { status: 0, body: '' }, { pid: 7, logFile: '/x.log' }), /^appliance a1: running \(pid 7\) but its stats listener does not answer; log \/x\.log$/);
  t.match(applianceStatusLine('a1', { status: 401, body: 'unauthorized: send\nAuthorization' }, undefined), /^appliance a1: its stats listener answered HTTP 401 "unauthorized: send Authorization" instead of counters$/);
  t.equal(applianceStatusLine('a1', { rx_packets: 3, tx_packets: 3, flows_active: 1, other: { x: 1 } }, undefined), 'appliance a1: rx_packets 3, tx_packets 3, flows_active 1');
});

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
