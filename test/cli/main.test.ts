/**
 * The command line as a newcomer meets it: help texts, errors that name the flag, and a policy error at start
 * reported as file:line:column with a non-zero exit, before anything listens.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CLI, REPO } from '../helpers/appliance.js';

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

t.test('--help lists the commands and run --help lists every option with its environment variable', async (t) => {
  const top = cli(['--help']);
  t.equal(top.code, 0);
  for (const cmd of ['run', 'validate', 'explain', 'lab']) t.match(top.out, new RegExp(`gwlb-inspector ${cmd}`));
  const run = cli(['run', '--help']);
  t.equal(run.code, 0);
  for (const flag of ['--listen', '--port', '--admin-listen', '--policy', '--workers', '--return-mode', '--max-flows']) t.match(run.out, flag);
  t.match(run.out, /GWLB_INSPECTOR_ADMIN_LISTEN/);
});

t.test('unknown commands and flags, and invalid values, exit 2 with a message naming them', async (t) => {
  t.equal(cli(['frobnicate']).code, 2);
  const badFlag = cli(['run', '--prot', '6081']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.err, /--prot/);
  const badEnv = cli(['run'], { GWLB_INSPECTOR_WORKERS: 'zero' });
  t.equal(badEnv.code, 2);
  t.match(badEnv.err, /GWLB_INSPECTOR_WORKERS/);
});

t.test('an invalid policy at start is reported as file:line:column and the appliance does not start', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - name: x\n    action: allow\n' });
  const r = cli(['run', '--listen', '127.0.0.1', '--port', '1', '--admin-listen', '127.0.0.1:0', '--policy', join(dir, 'bad.yaml')]);
  t.equal(r.code, 2);
  t.match(r.err, /bad\.yaml:5:\d+/);
  t.notMatch(r.err, /"msg":"started"/);
});

t.test('--version prints the package version', async (t) => {
  const r = cli(['--version']);
  t.equal(r.code, 0);
  t.match(r.out.trim(), /^\d+\.\d+\.\d+$/);
});
