/**
 * The appliance runs as an unprivileged user with CAP_NET_RAW and nothing else, the two ways docs/operations.md
 * describes: a file capability on the node binary (what docker/Dockerfile does: container runtimes raise no ambient
 * capabilities for non-root users) and an ambient capability (what docker/gwlb-inspector.service does with
 * AmbientCapabilities=CAP_NET_RAW). In both, the bounding set holds only CAP_NET_RAW, the appliance starts, its
 * raw return path sends a GENEVE datagram back from GWLB's own port, and the container HEALTHCHECK script says
 * healthy. Without the capability it refuses to start with a start_failed line naming CAP_NET_RAW.
 * Uses setpriv (util-linux) and setcap (libcap2-bin), both from scripts/install-deps.sh's Debian packages.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { copyFileSync, chmodSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Udp } from '../../src/packet/build.js';
import { CLI, REPO, randomLoopback, randomPort } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const NOBODY = 65534;
const HEALTHCHECK = join(REPO, 'dist', 'admin', 'healthcheck.js');
const CAP_NET_RAW_BIT = 13n; // linux/capability.h

const missing = ['setpriv', 'setcap', 'getcap'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
if (missing.length > 0) throw new Error(`${missing.join(', ')} not installed: apt-get install -y util-linux libcap2-bin`);

/** Capability sets of a running process, from /proc (hex masks as bigint). */
function caps(pid: number): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^Cap(Inh|Prm|Eff|Bnd|Amb):\s+([0-9a-f]+)$/.exec(line);
    if (m !== null) out[m[1] as string] = BigInt(`0x${m[2]}`);
  }
  return out;
}

interface Run {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

function runAs(node: string, setprivArgs: string[], args: string[]): Run {
  const proc = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...setprivArgs, '--', node, CLI, 'run', ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  return { proc, stderr: () => err, exited: once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]> };
}

async function stop(r: Run): Promise<void> {
  if (r.proc.exitCode !== null || r.proc.signalCode !== null) return;
  r.proc.kill('SIGTERM');
  await r.exited;
}

/** Starts the appliance as `nobody`, checks its capabilities, a GENEVE round trip and the HEALTHCHECK script. */
async function applianceWorks(t: Test, node: string, setprivArgs: string[], expectAmbient: boolean): Promise<void> {
  const port = randomPort();
  const gwlb = randomLoopback();
  const admin = `127.0.0.1:${randomPort()}`;
  const r = runAs(node, setprivArgs, ['--listen', '127.0.0.1', '--port', String(port), '--admin-listen', admin, '--stats-listen', `127.0.0.1:${randomPort()}`, '--workers', '1', '--policy', 'policies/default.yaml']);
  t.teardown(() => stop(r));
  await waitFor(() => r.stderr().includes('"msg":"started"') || r.proc.exitCode !== null, 30_000, 'the appliance started or exited');
  t.match(r.stderr(), /"msg":"started"/, `started as nobody: ${r.stderr().slice(-400)}`);

  // setpriv execs node: the pid is the appliance's.
  const c = caps(r.proc.pid as number);
  t.equal(c['Bnd'], 1n << CAP_NET_RAW_BIT, 'bounding set: CAP_NET_RAW only');
  t.equal(c['Eff'], 1n << CAP_NET_RAW_BIT, 'effective: CAP_NET_RAW only');
  t.equal(c['Amb'], expectAmbient ? 1n << CAP_NET_RAW_BIT : 0n, expectAmbient ? 'ambient CAP_NET_RAW' : 'no ambient capability');
  t.equal(Number(readFileSync(`/proc/${r.proc.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1]), NOBODY, 'runs as nobody');

  // A GENEVE datagram from "GWLB" comes back on GWLB's port 6081, sent from the raw socket.
  const back = createSocket('udp4');
  const sender = createSocket('udp4');
  t.teardown(() => {
    back.close();
    sender.close();
  });
  back.bind(6081, gwlb);
  sender.bind(0, gwlb);
  await Promise.all([once(back, 'listening'), once(sender, 'listening')]);
  const datagram = encodeGeneve({ endpointIdHi: 1, endpointIdLo: 2, flowCookie: 3 }, buildIPv4Udp({ src: '10.9.0.1', dst: '10.9.0.2', srcPort: 5000, dstPort: 53, payload: Buffer.from('capabilities') }));
  let returned: Buffer | undefined;
  back.on('message', (m) => (returned = m));
  await waitFor(async () => {
    await new Promise<void>((res, rej) => sender.send(datagram, port, '127.0.0.1', (e) => (e ? rej(e) : res())));
    await new Promise((res) => setTimeout(res, 50));
    return returned !== undefined;
  }, 10_000, 'the datagram back from the raw return path');
  t.same(returned, datagram, 'same GENEVE bytes back to GWLB');

  await waitFor(() => spawnSync(process.execPath, [HEALTHCHECK, admin]).status === 0, 10_000, 'HEALTHCHECK healthy');
  t.pass('the container HEALTHCHECK script says healthy');
  await stop(r);
}

const dir = mkdtempSync(join(tmpdir(), 'gwi-caps-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('file capability on the node binary (the image), bounding set NET_RAW only, no ambient capability', async (t) => {
  const node = join(dir, 'node');
  copyFileSync(process.execPath, node);
  chmodSync(node, 0o755);
  chmodSync(dir, 0o755);
  const set = spawnSync('setcap', ['cap_net_raw=ep', node], { encoding: 'utf8' });
  t.equal(set.status, 0, set.stderr);
  t.match(spawnSync('getcap', [node], { encoding: 'utf8' }).stdout, /cap_net_raw[=+]ep/);
  await applianceWorks(t, node, ['--inh-caps=-all', '--bounding-set=-all,+net_raw'], false);
  // Node treats a process with file capabilities as privileged and ignores NODE_OPTIONS (docs/operations.md).
  const heap = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all,+net_raw', '--', node, '-p', "Math.round(require('v8').getHeapStatistics().heap_size_limit / 1048576)"], {
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=64' },
  });
  t.ok(Number(heap.stdout) > 256, `NODE_OPTIONS ignored: heap limit ${heap.stdout.trim()} MiB, not 64`);
});

/** Key=value lines of docker/gwlb-inspector.service's [Service] section. */
function unitService(): Map<string, string> {
  const text = readFileSync(join(REPO, 'docker', 'gwlb-inspector.service'), 'utf8');
  const section = text.slice(text.indexOf('[Service]'), text.indexOf('[Install]'));
  const out = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m !== null) out.set(m[1] as string, m[2] as string);
  }
  return out;
}

t.test('ambient CAP_NET_RAW with no_new_privs, as docker/gwlb-inspector.service sets them', async (t) => {
  const unit = unitService();
  const capsOf = (key: string): string[] => (unit.get(key) ?? '').split(/\s+/).filter((c) => c !== '').map((c) => c.replace(/^CAP_/, '').toLowerCase());
  t.same(capsOf('AmbientCapabilities'), ['net_raw']);
  t.same(capsOf('CapabilityBoundingSet'), ['net_raw']);
  t.equal(unit.get('NoNewPrivileges'), 'yes');
  const list = (c: string[]): string => ['-all', ...c.map((x) => `+${x}`)].join(',');
  await applianceWorks(
    t,
    process.execPath,
    [`--inh-caps=${list(capsOf('AmbientCapabilities'))}`, `--ambient-caps=${list(capsOf('AmbientCapabilities'))}`, `--bounding-set=${list(capsOf('CapabilityBoundingSet'))}`, '--no-new-privs'],
    true,
  );
});
