/**
 * The command line as a newcomer meets it: help texts, errors that name the flag, and a policy error at start
 * reported as file:line:column with a non-zero exit, before anything listens.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { totalmem } from 'node:os';
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

t.test('out-of-range settings exit 2 with one line naming the flag or variable, the range and the unit', async (t) => {
  // Loopback and an unused port: if a value were accepted, nothing reachable from outside would start.
  const safe = ['--listen', '127.0.0.1', '--port', String(20000 + Math.floor(Math.random() * 40000)), '--admin-listen', '127.0.0.1:0', '--policy', 'policies/default.yaml'];
  const cases: Array<[string[], NodeJS.ProcessEnv, string]> = [
    [['--max-flows', '1e12'], {}, '--max-flows: "1e12" is out of range; allowed: 16 to 8,000,000 flows'],
    [['--max-flows', '10000000'], {}, '--max-flows: "10000000" is out of range; allowed: 16 to 8,000,000 flows'],
    [[], { GWLB_INSPECTOR_BATCH_SIZE: '100000' }, 'GWLB_INSPECTOR_BATCH_SIZE: "100000" is out of range; allowed: 1 to 1,024 datagrams'],
    [['--socket-buffer-bytes', '1073741824'], {}, '--socket-buffer-bytes: "1073741824" is out of range; allowed: 65,536 to 268,435,456 bytes (256 MiB at most)'],
    [['--max-held-bytes', '4294967296'], {}, '--max-held-bytes: "4294967296" is out of range; allowed: 0 to 1,073,741,824 bytes (1 GiB at most)'],
    [['--max-held-packets-per-flow', '100000'], {}, '--max-held-packets-per-flow: "100000" is out of range; allowed: 1 to 4,096 packets'],
    [['--workers', '0'], {}, '--workers: "0" is out of range; allowed: 1 to 64 threads'],
    [['--health-interval-ms', 'soon'], {}, '--health-interval-ms: "soon" is not a number; allowed: 50 to 60,000 ms'],
  ];
  for (const [args, env, line] of cases) {
    const r = cli(['run', ...safe, ...args], env);
    t.equal(r.code, 2, `${args.join(' ') || JSON.stringify(env)}: exit 2`);
    // The message for people, then the one structured start_failed line (step settings) for log pipelines.
    const [human, structured, ...rest] = r.err.split('\n');
    t.equal(human, line, `${args.join(' ') || JSON.stringify(env)}: the message names the setting, the range and the unit`);
    t.match(JSON.parse(structured ?? '{}'), { msg: 'start_failed', step: 'settings', reason: line });
    t.same(rest, [''], 'nothing else');
    t.notMatch(r.err, /"msg":"started"/);
  }
});

t.test('bounds that together exceed this machine\'s memory are refused at start in one line', async (t) => {
  const args = ['--workers', '64', '--max-held-bytes', String(1024 ** 3), '--socket-buffer-bytes', String(256 * 1024 ** 2), '--max-flows', '8000000'];
  // 64 GiB of holds + 64 GiB of socket buffers + ~2.6 GiB of flow tables: refused unless the machine is huge.
  if (totalmem() * 0.8 > 135 * 1024 ** 3) {
    t.skip(`this machine has ${totalmem()} bytes of memory: the largest bounds fit`);
    return;
  }
  const r = cli(['run', '--listen', '127.0.0.1', '--port', '1', '--admin-listen', '127.0.0.1:0', ...args]);
  t.equal(r.code, 2);
  t.match(r.err, /^settings need up to 1\d\d\.\d GiB in the worst case \(flow tables [\d.]+ GiB, held packets 64 GiB = --max-held-bytes × --workers, fragments [\d.]+ MiB, streams [\d.]+ GiB, socket buffers 64 GiB, packet slots [\d.]+ MiB\) but 80 % of this machine's memory is [\d.]+ [GM]iB: lower --max-flows, --max-held-bytes, --stream-memcap-bytes, --content-max-flows, --socket-buffer-bytes or --workers\n\{"time":"[^"]+","level":"error","msg":"start_failed","step":"settings",[^\n]*\}\n$/);
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
