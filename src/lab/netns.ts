/**
 * Network namespaces, veth pairs and the lab's addressing plan, driven through iproute2 (`ip`).
 *
 *    client ns                      gateway ns                                server ns
 *   ┌──────────────┐  veth  ┌──────────────────────────────────┐  veth  ┌──────────────┐
 *   │ eth0         ├────────┤ veth-c              veth-s       ├────────┤ eth0         │
 *   │ 10.77.1.2/24 │        │ 10.77.1.1/24        10.77.2.1/24 │        │ 10.77.2.2/24 │
 *   │ fd77:1::2/64 │        │ fd77:1::1/64        fd77:2::1/64 │        │ fd77:2::2/64 │
 *   └──────────────┘        │   iif veth-* → table 100 → tun0  │        └──────────────┘
 *                           │   emulator: tun0 ⇄ GENEVE on lo  │
 *                           │   appliances: 127.0.1.N:6081     │
 *                           └──────────────────────────────────┘
 *
 * Every namespace of one lab is named `gwi-<labid>-<role>` (LAB_NS_PREFIX + id + '-'), so labs never clash and
 * `cleanup(prefix)` finds what a crashed run left behind. Interfaces live inside those namespaces, so their short
 * names (eth0, veth-c, tun0) cannot clash between labs either; deleting a namespace destroys its veth ends and its
 * TUN device. The subnets are private and only ever configured inside the lab's namespaces.
 */
import { execFile } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';

/** Every lab namespace name starts with this. */
export const LAB_NS_PREFIX = 'gwi-';
/** Lab ids: short, so `gwi-<id>-server` stays readable; letters, digits and '_' only. */
export const LAB_ID_PATTERN = /^[a-z0-9_]{1,12}$/;

/** MTU of the inner links (veths and TUN): GWLB carries inner packets up to 8500 bytes (docs/architecture.md §2). */
export const LAB_INNER_MTU = 8500;
/** Policy routing table in the gateway that sends forwarded traffic into the TUN device. */
export const LAB_TUN_TABLE = 100;
/** The ip rule priority of the iif veth-* → table rules (before main at 32766). */
export const LAB_RULE_PRIORITY = 100;

export const LAB_ADDR = {
  client4: '10.77.1.2',
  client6: 'fd77:1::2',
  gwClient4: '10.77.1.1',
  gwClient6: 'fd77:1::1',
  gwServer4: '10.77.2.1',
  gwServer6: 'fd77:2::1',
  server4: '10.77.2.2',
  server6: 'fd77:2::2',
  /** The emulator's own outer address (GWLB node address) inside the gateway namespace. */
  emulator: '127.0.0.2',
} as const;

export const LAB_IFACE = {
  /** Interface name inside client and server namespaces. */
  host: 'eth0',
  gwClient: 'veth-c',
  gwServer: 'veth-s',
  tun: 'tun0',
} as const;

export type LabHost = 'client' | 'server' | 'gateway';

export interface LabNamespaces {
  prefix: string;
  client: string;
  gateway: string;
  server: string;
}

/** A fault of the environment or of a command we ran (never a wire anomaly). */
export class LabError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LabError';
    this.code = code;
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Bytes or text for standard input. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  maxBuffer?: number;
}

/** Runs a command to completion; never throws for a non-zero exit (see `code`), throws LabError when it cannot start. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024, // 64 MiB
        env: opts.env ?? process.env,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err !== null && typeof (err as { code?: unknown }).code === 'string') {
          reject(new LabError('LAB_SPAWN', `cannot run ${cmd}: ${err.message}`, { cause: err }));
          return;
        }
        const killed = err !== null && (err as { killed?: boolean }).killed === true;
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : killed ? 124 : 1;
        resolve({ code, stdout, stderr: killed ? `${stderr}\n(timed out after ${opts.timeoutMs ?? 30_000} ms)` : stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs a command that must succeed; throws LabError(code) with its stderr otherwise. */
export async function runOk(cmd: string, args: readonly string[], code = 'LAB_COMMAND', opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new LabError(code, `${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

/** `ip -batch -`: many iproute2 commands in one process; stops at the first failure (reported with its line). */
export async function ipBatch(lines: readonly string[], globalOptions: readonly string[] = [], code = 'LAB_IP'): Promise<void> {
  if (lines.length === 0) return;
  await runOk('ip', [...globalOptions, '-batch', '-'], code, { input: `${lines.join('\n')}\n` });
}

/** argv that runs `cmd` inside namespace `ns` (ip netns exec execs the command: its PID is the command's PID). */
export function nsExecArgv(ns: string, cmd: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...cmd];
}

export function labPrefix(labId: string): string {
  if (!LAB_ID_PATTERN.test(labId)) throw new LabError('LAB_BAD_ID', `lab id must match ${LAB_ID_PATTERN}: ${JSON.stringify(labId)}`);
  return `${LAB_NS_PREFIX}${labId}-`;
}

export function labNamespaces(labId: string): LabNamespaces {
  const prefix = labPrefix(labId);
  return { prefix, client: `${prefix}client`, gateway: `${prefix}gw`, server: `${prefix}server` };
}

/** Namespace names known to iproute2 (/run/netns). */
export async function listNamespaces(): Promise<string[]> {
  const out = await runOk('ip', ['netns', 'list'], 'LAB_NETNS_LIST');
  // Lines look like "name" or "name (id: 3)".
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** PIDs of processes whose network namespace is `ns`. */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns]);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => Number.parseInt(l.trim(), 10))
    .filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

/** Whether a process with this PID exists (signal 0 probes without delivering anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends processes by PID: SIGTERM, then SIGKILL for whatever is still alive after `graceMs`. Resolves when all are
 * gone (or after the SIGKILL grace). Unknown PIDs are ignored.
 */
export async function killPids(pids: readonly number[], graceMs = 2_000): Promise<void> {
  const live = pids.filter(alive);
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (live.some(alive) && Date.now() < deadline) await delay(25);
  for (const pid of live.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const hardDeadline = Date.now() + 2_000;
  while (live.some(alive) && Date.now() < hardDeadline) await delay(25);
}

/** Kills every process inside `ns` (all of them were started by a lab) and deletes the namespace. Idempotent. */
export async function deleteNamespace(ns: string): Promise<void> {
  await killPids(await namespacePids(ns));
  const r = await run('ip', ['netns', 'del', ns]);
  if (r.code !== 0 && (await listNamespaces()).includes(ns)) {
    throw new LabError('LAB_NETNS_DEL', `ip netns del ${ns} failed: ${r.stderr.trim()}`);
  }
}

/**
 * Removes every namespace whose name starts with `prefix` (e.g. `gwi-ab12cd-` for one lab, or LAB_NS_PREFIX for
 * all), killing the processes inside them first. Safe to call when nothing is left. Returns what it removed.
 */
export async function cleanup(prefix: string): Promise<string[]> {
  if (!prefix.startsWith(LAB_NS_PREFIX)) {
    throw new LabError('LAB_BAD_PREFIX', `refusing to clean up namespaces outside ${LAB_NS_PREFIX}*: ${prefix}`);
  }
  const victims = (await listNamespaces()).filter((n) => n.startsWith(prefix));
  for (const ns of victims) await deleteNamespace(ns);
  return victims;
}

/** Writes sysctls inside a namespace (/proc/sys/net is per network namespace). */
async function nsSysctl(ns: string, settings: Readonly<Record<string, string>>): Promise<void> {
  const script = Object.entries(settings)
    .map(([k, v]) => `echo ${v} > /proc/sys/${k.replaceAll('.', '/')}`)
    .join(' && ');
  await runOk('ip', ['netns', 'exec', ns, 'sh', '-ec', script], 'LAB_SYSCTL');
}

/**
 * Checks what the lab needs from the machine: root, `ip netns`, /dev/net/tun. Resolves to a list of problems
 * (empty when the lab can run), each a sentence a person can act on.
 */
export async function labPrerequisites(): Promise<string[]> {
  const problems: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    problems.push('the lab needs root (network namespaces, veth, TUN): run as root or in a privileged container');
  }
  try {
    const r = await run('ip', ['netns', 'list']);
    if (r.code !== 0) problems.push(`\`ip netns list\` failed: ${r.stderr.trim()} (install iproute2)`);
  } catch {
    problems.push('`ip` (iproute2) is not installed: apt-get install -y iproute2');
  }
  const { access, constants } = await import('node:fs/promises');
  try {
    await access('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    problems.push('/dev/net/tun is missing or not accessible (the emulator captures packets with a TUN device)');
  }
  return problems;
}

/**
 * Creates the three namespaces, the two veth pairs, addresses (IPv4 and IPv6), routes, forwarding and the
 * gateway's policy routing into a persistent TUN device. The TUN exists (and routes point at it) before any
 * emulator attaches; while nobody reads it, forwarded packets are dropped: the lab fails closed. Packets the
 * emulator writes into the TUN arrive with iif tun0, match no rule but main, and are routed to their destination.
 */
export async function createLabNetwork(labId: string): Promise<LabNamespaces> {
  const ns = labNamespaces(labId);
  const existing = (await listNamespaces()).filter((n) => n.startsWith(ns.prefix));
  if (existing.length > 0) {
    throw new LabError('LAB_EXISTS', `lab ${labId} already exists (${existing.join(', ')}): run \`lab down --id ${labId}\` first`);
  }
  try {
    await ipBatch([`netns add ${ns.client}`, `netns add ${ns.gateway}`, `netns add ${ns.server}`], [], 'LAB_NETNS_ADD');
    const { host, gwClient, gwServer, tun } = LAB_IFACE;
    const A = LAB_ADDR;
    const mtu = LAB_INNER_MTU;
    // Sysctls first: forwarding and rp_filter must be right before links come up. rp_filter off: a packet coming
    // back out of the TUN has a source (the client) that main routes via veth-c, not tun0 (strict mode drops it).
    const noDad = { 'net.ipv6.conf.all.accept_dad': '0', 'net.ipv6.conf.default.accept_dad': '0' };
    await nsSysctl(ns.gateway, {
      'net.ipv4.ip_forward': '1',
      'net.ipv4.conf.all.rp_filter': '0',
      'net.ipv4.conf.default.rp_filter': '0',
      'net.ipv4.conf.all.send_redirects': '0',
      'net.ipv4.conf.default.send_redirects': '0',
      'net.ipv6.conf.all.forwarding': '1',
      ...noDad,
    });
    await nsSysctl(ns.client, noDad);
    await nsSysctl(ns.server, noDad);
    await ipBatch([
      `link add ${gwClient} netns ${ns.gateway} mtu ${mtu} type veth peer name ${host} netns ${ns.client} mtu ${mtu}`,
      `link add ${gwServer} netns ${ns.gateway} mtu ${mtu} type veth peer name ${host} netns ${ns.server} mtu ${mtu}`,
    ]);
    // `ip -batch` lines cannot carry global options (-n, -6): one batch per namespace and family.
    await ipBatch(
      [
        'link set lo up',
        `tuntap add dev ${tun} mode tun`,
        `link set ${tun} mtu ${mtu} up`,
        `addr add ${A.gwClient4}/24 dev ${gwClient}`,
        `addr add ${A.gwClient6}/64 dev ${gwClient} nodad`,
        `addr add ${A.gwServer4}/24 dev ${gwServer}`,
        `addr add ${A.gwServer6}/64 dev ${gwServer} nodad`,
        `link set ${gwClient} up`,
        `link set ${gwServer} up`,
        `route add default dev ${tun} table ${LAB_TUN_TABLE}`,
        // Fail closed: without the TUN route (device gone), forwarded traffic is dropped, never routed around GWLB.
        `route add blackhole default metric 4294967295 table ${LAB_TUN_TABLE}`,
        `rule add iif ${gwClient} lookup ${LAB_TUN_TABLE} pref ${LAB_RULE_PRIORITY}`,
        `rule add iif ${gwServer} lookup ${LAB_TUN_TABLE} pref ${LAB_RULE_PRIORITY}`,
      ],
      ['-n', ns.gateway],
    );
    await ipBatch(
      [
        `route add default dev ${tun} table ${LAB_TUN_TABLE}`,
        `route add blackhole default metric 4294967295 table ${LAB_TUN_TABLE}`,
        `rule add iif ${gwClient} lookup ${LAB_TUN_TABLE} pref ${LAB_RULE_PRIORITY}`,
        `rule add iif ${gwServer} lookup ${LAB_TUN_TABLE} pref ${LAB_RULE_PRIORITY}`,
      ],
      ['-n', ns.gateway, '-6'],
    );
    for (const [nsName, a4, a6, gw4, gw6] of [
      [ns.client, A.client4, A.client6, A.gwClient4, A.gwClient6],
      [ns.server, A.server4, A.server6, A.gwServer4, A.gwServer6],
    ] as const) {
      await ipBatch(
        [
          'link set lo up',
          `addr add ${a4}/24 dev ${host}`,
          `addr add ${a6}/64 dev ${host} nodad`,
          `link set ${host} up`,
          `route add default via ${gw4}`,
        ],
        ['-n', nsName],
      );
      await ipBatch([`route add default via ${gw6}`], ['-n', nsName, '-6']);
    }
    // The TUN was created after the "all" sysctls: set its own rp_filter explicitly (the max of all/dev applies).
    await nsSysctl(ns.gateway, { [`net.ipv4.conf.${LAB_IFACE.tun}.rp_filter`]: '0' });
  } catch (err) {
    await cleanup(ns.prefix).catch(() => undefined);
    throw err;
  }
  return ns;
}
