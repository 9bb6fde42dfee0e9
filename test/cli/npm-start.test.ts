/**
 * The quick start's `npm start` as a service manager or a terminal stops it: SIGTERM to npm must stop the
 * appliance itself (no orphaned node left holding port 6081), and the appliance must be npm's direct child (the
 * start script execs it; no shell in between to swallow the signal).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { REPO } from '../helpers/appliance.js';

async function freeTcpPort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Children of `pid` (from /proc), with their command lines. */
function childrenOf(pid: number): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter((s) => s !== '')) {
      const cpid = Number(c);
      out.push({ pid: cpid, cmd: readFileSync(`/proc/${cpid}/cmdline`, 'utf8').split('\0').join(' ') });
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function udpPortFree(port: number): Promise<boolean> {
  const s = createSocket('udp4');
  try {
    s.bind(port, '127.0.0.1');
    await once(s, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    s.close();
  }
}

t.test('SIGTERM to `npm start` stops the appliance it started and frees the GENEVE port', async (t) => {
  const port = 20_000 + (process.pid % 20_000);
  const admin = await freeTcpPort();
  // --ignore-scripts skips the prestart build (npm test has built already); the start script itself runs.
  const npm = spawn('npm', ['start', '--ignore-scripts'], {
    cwd: REPO,
    env: { ...process.env, GWLB_INSPECTOR_LISTEN: '127.0.0.1', GWLB_INSPECTOR_PORT: String(port), GWLB_INSPECTOR_ADMIN_LISTEN: `127.0.0.1:${admin}`, GWLB_INSPECTOR_WORKERS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(npm, 'exit');
  t.teardown(() => void (npm.exitCode === null && npm.kill('SIGKILL')));
  let log = '';
  npm.stderr.setEncoding('utf8');
  const started = new Promise<void>((resolve, reject) => {
    npm.stderr.on('data', (s: string) => {
      log += s;
      if (log.includes('"msg":"started"')) resolve();
    });
    void exited.then(() => reject(new Error(`npm start exited before the appliance started: ${log}`)));
  });
  await started;
  const kids = childrenOf(npm.pid as number);
  t.equal(kids.length, 1, 'npm has one child');
  const appliance = kids[0] as { pid: number; cmd: string };
  t.match(appliance.cmd, /dist\/cli\/main\.js run --policy policies\/default\.yaml/, 'the child is the appliance itself, not a shell');
  t.notOk(await udpPortFree(port), 'the appliance holds its GENEVE port');

  npm.kill('SIGTERM');
  await exited;
  const deadline = Date.now() + 10_000;
  while (alive(appliance.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.notOk(alive(appliance.pid), 'the appliance exited with npm');
  t.ok(await udpPortFree(port), 'the GENEVE port is free again');
  t.match(log, /"msg":"stopped"/, 'it stopped cleanly');
});
