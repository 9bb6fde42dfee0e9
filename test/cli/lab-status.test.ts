/**
 * `lab status` when an appliance is gone: a readable line (NOT RUNNING, its pid, the last error it logged, its log
 * file), never the raw JSON the lab collected; here from the log of an appliance that really failed to start
 * (test/e2e/lab-status.test.ts kills one in a real lab).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applianceStatusLine } from '../../src/cli/lab.js';
import { CLI, REPO } from '../helpers/appliance.js';

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
