/**
 * `gwlb-inspector lab up|down|status`: the GWLB lab for people (src/lab/lab.ts is the same thing for tests).
 *
 *   lab up     [--id ID] [--policy FILE] [--workers N] [--appliances N] [--stickiness 5-tuple|3-tuple|2-tuple]
 *              [--tcp-idle-s S] [--udp-idle-s S] [--health-interval-ms MS] [--health-timeout-ms MS]
 *              [--healthy-threshold N] [--unhealthy-threshold N] [--health-protocol http|tcp]
 *   lab status [--id ID] [--json]
 *   lab down   [--id ID] [--all]
 *
 * `up` leaves the emulator and the appliance(s) running in the background (detached, by PID in the state file
 * under /run/gwlb-inspector/ID) and returns; `down` stops them by PID and removes the namespaces.
 */
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { LAB_HEALTH_DEFAULTS, healthSettingsProblems, type HealthCheckSettings } from '../lab/health.js';
import type { EmulatorSettings, Stickiness } from '../lab/emulator.js';
import { attachLab, startLab, type Lab } from '../lab/lab.js';
import { LAB_ADDR, LAB_NS_PREFIX, LabError, cleanup, labNamespaces } from '../lab/netns.js';

const DEFAULT_ID = 'demo';

const USAGE = `Usage:
  gwlb-inspector lab up [--id ID] [--policy FILE] [--workers N] [--appliances N] [options]
  gwlb-inspector lab status [--id ID] [--json]
  gwlb-inspector lab down [--id ID] [--all]

Creates network namespaces for a client (10.77.1.2, fd77:1::2) and a server (10.77.2.2, fd77:2::2), and a gateway
where a GWLB emulator sends every packet between them through the appliance in GENEVE, as AWS GWLB does.
Needs root. Default id: ${DEFAULT_ID}.

up options:
  --policy FILE               policy for the appliance(s) (default policies/default.yaml)
  --workers N                 appliance worker threads (default 1)
  --appliances N              appliances behind the emulator (default 1)
  --stickiness MODE           5-tuple (default), 3-tuple or 2-tuple
  --tcp-idle-s S              GWLB TCP idle timeout (default 350)
  --udp-idle-s S              GWLB UDP/other idle timeout (default 120)
  --health-protocol P         http (GET /healthz on the admin port, default) or tcp
  --health-interval-ms MS     default ${LAB_HEALTH_DEFAULTS.intervalMs} (GWLB: 10000)
  --health-timeout-ms MS      default ${LAB_HEALTH_DEFAULTS.timeoutMs} (GWLB: 5000)
  --healthy-threshold N       default ${LAB_HEALTH_DEFAULTS.healthyThreshold} (GWLB: 5)
  --unhealthy-threshold N     default ${LAB_HEALTH_DEFAULTS.unhealthyThreshold} (GWLB: 2)`;

function int(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new LabError('LAB_USAGE', `--${name} must be an integer ${min}-${max}`);
  return n;
}

function describe(lab: Lab): string[] {
  const ns = lab.namespaces;
  const lines = [
    `lab ${lab.id} is up (state in ${lab.stateDir})`,
    '',
    `  client   ${LAB_ADDR.client4}, ${LAB_ADDR.client6}   sudo ip netns exec ${ns.client} bash`,
    `  server   ${LAB_ADDR.server4}, ${LAB_ADDR.server6}   sudo ip netns exec ${ns.server} bash`,
    `  gateway  GWLB emulator pid ${lab.emulatorPid}      sudo ip netns exec ${ns.gateway} bash`,
  ];
  for (const a of lab.appliances) {
    lines.push(`  appliance ${a.name}: pid ${a.pid}, GENEVE ${a.addr}:${a.port}, health ${a.adminUrl}/healthz, stats ${a.statsUrl}/stats (inside the gateway), log ${a.logFile}`);
  }
  return lines;
}

async function up(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      id: { type: 'string' },
      policy: { type: 'string' },
      workers: { type: 'string' },
      appliances: { type: 'string' },
      stickiness: { type: 'string' },
      'tcp-idle-s': { type: 'string' },
      'udp-idle-s': { type: 'string' },
      'health-protocol': { type: 'string' },
      'health-interval-ms': { type: 'string' },
      'health-timeout-ms': { type: 'string' },
      'healthy-threshold': { type: 'string' },
      'unhealthy-threshold': { type: 'string' },
    },
  });
  const id = values.id ?? DEFAULT_ID;
  const policy = values.policy ?? 'policies/default.yaml';
  if (!existsSync(policy)) throw new LabError('LAB_USAGE', `policy file not found: ${policy}`);
  const stickiness = values.stickiness ?? '5-tuple';
  if (stickiness !== '5-tuple' && stickiness !== '3-tuple' && stickiness !== '2-tuple') {
    throw new LabError('LAB_USAGE', '--stickiness must be 5-tuple, 3-tuple or 2-tuple');
  }
  const protocol = values['health-protocol'] ?? LAB_HEALTH_DEFAULTS.protocol;
  if (protocol !== 'http' && protocol !== 'tcp') throw new LabError('LAB_USAGE', '--health-protocol must be http or tcp');
  const health: HealthCheckSettings = {
    ...LAB_HEALTH_DEFAULTS,
    protocol,
    intervalMs: int('health-interval-ms', values['health-interval-ms'], 10, 300_000) ?? LAB_HEALTH_DEFAULTS.intervalMs,
    timeoutMs: int('health-timeout-ms', values['health-timeout-ms'], 5, 120_000) ?? LAB_HEALTH_DEFAULTS.timeoutMs,
    healthyThreshold: int('healthy-threshold', values['healthy-threshold'], 1, 10) ?? LAB_HEALTH_DEFAULTS.healthyThreshold,
    unhealthyThreshold: int('unhealthy-threshold', values['unhealthy-threshold'], 1, 10) ?? LAB_HEALTH_DEFAULTS.unhealthyThreshold,
  };
  const problems = healthSettingsProblems(health);
  if (problems.length > 0) throw new LabError('LAB_USAGE', problems.join('; '));
  const emulator: Partial<EmulatorSettings> = { stickiness: stickiness as Stickiness, health };
  const tcpIdle = int('tcp-idle-s', values['tcp-idle-s'], 1, 6000);
  const udpIdle = int('udp-idle-s', values['udp-idle-s'], 1, 6000);
  if (tcpIdle !== undefined) emulator.tcpIdleTimeoutMs = tcpIdle * 1000;
  if (udpIdle !== undefined) emulator.otherIdleTimeoutMs = udpIdle * 1000;
  const count = int('appliances', values.appliances, 1, 16) ?? 1;
  const workers = int('workers', values.workers, 1, 256) ?? 1;

  const lab = await startLab({ id, emulator, keepState: true });
  try {
    for (let i = 0; i < count; i++) await lab.startAppliance({ policy, workers });
  } catch (err) {
    await lab.down();
    throw err;
  }
  const ns = lab.namespaces;
  out(
    [
      ...describe(lab),
      '',
      'Try it:',
      `  sudo ip netns exec ${ns.server} python3 -m http.server 8000 &`,
      `  sudo ip netns exec ${ns.client} curl -s http://${LAB_ADDR.server4}:8000/ | head`,
      `  sudo ip netns exec ${ns.client} ping -c 3 ${LAB_ADDR.server6}`,
      `  npx gwlb-inspector lab status${id === DEFAULT_ID ? '' : ` --id ${id}`}`,
      `  npx gwlb-inspector lab down${id === DEFAULT_ID ? '' : ` --id ${id}`}`,
    ].join('\n'),
  );
  return 0;
}

/** The counters `lab status` shows for a running appliance, from its /stats. */
const STATUS_COUNTERS = ['rx_packets', 'tx_packets', 'passed', 'dropped_policy', 'rejected', 'flows_active'];

/** The last operational error an appliance logged (start_failed, a fault), as `msg: reason`; null when none. */
function lastLoggedError(logFile: string): string | null {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0 && i >= lines.length - 200; i--) {
    const line = lines[i] ?? '';
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o['level'] !== 'error' && o['level'] !== 'fatal') continue;
      const why = [o['step'] === undefined ? '' : `step ${String(o['step'])}`, typeof o['reason'] === 'string' ? o['reason'] : typeof o['error'] === 'string' ? o['error'] : '']
        .filter((x) => x !== '')
        .join(', ');
      return `${String(o['msg'] ?? 'error')}${why === '' ? '' : ` (${why})`}`;
    } catch {
      continue;
    }
  }
  return null;
}

/**
 * One readable line per appliance for `lab status`: its counters while it runs; when it has exited (crashed,
 * killed, failed to start) or its stats listener does not answer, a sentence saying so with its pid, the last error
 * it logged and where its log is — never the raw JSON the lab collected.
 */
export function applianceStatusLine(name: string, stats: unknown, info: { pid: number; logFile: string } | undefined): string {
  const s = stats !== null && typeof stats === 'object' ? (stats as Record<string, unknown>) : {};
  const log = info === undefined ? '' : `; log ${info.logFile}`;
  if (s['stopped'] === true) {
    const err = info === undefined ? null : lastLoggedError(info.logFile);
    const pid = info === undefined ? '' : ` (pid ${info.pid} is gone)`;
    return `appliance ${name}: NOT RUNNING${pid}: ${err === null ? 'it logged no error, so it was killed or crashed' : `last error: ${err}`}${log}. GWLB's health checks fail for it; restart the lab (lab down, lab up)`;
  }
  const shown = STATUS_COUNTERS.filter((k) => typeof s[k] === 'number').map((k) => `${k} ${String(s[k])}`);
  if (shown.length > 0) return `appliance ${name}: ${shown.join(', ')}${s['draining'] === true ? ' (draining)' : ''}`;
  const status = typeof s['status'] === 'number' ? s['status'] : 0;
  const body = typeof s['body'] === 'string' ? s['body'].replace(/\s+/g, ' ').trim().slice(0, 120) : '';
  return status === 0
    ? `appliance ${name}: running${info === undefined ? '' : ` (pid ${info.pid})`} but its stats listener does not answer${log}`
    : `appliance ${name}: its stats listener answered HTTP ${status}${body === '' ? '' : ` "${body}"`} instead of counters${log}`;
}

async function status(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { id: { type: 'string' }, json: { type: 'boolean' } } });
  const id = values.id ?? DEFAULT_ID;
  const lab = attachLab(id);
  if (lab === undefined) {
    out(`lab ${id} is not up (no state in /run/gwlb-inspector/${id})`);
    return 1;
  }
  let counters;
  try {
    counters = await lab.counters();
  } catch (err) {
    out(`lab ${id}: the emulator (pid ${lab.emulatorPid}) does not answer: ${err instanceof Error ? err.message : String(err)}`);
    out(`clean up with: npx gwlb-inspector lab down${id === DEFAULT_ID ? '' : ` --id ${id}`}`);
    return 1;
  }
  if (values.json === true) {
    out(JSON.stringify(counters, null, 2));
    return 0;
  }
  const e = counters.emulator;
  const c = e.counters;
  const lines = [...describe(lab), ''];
  lines.push(`emulator: ${e.flows} flows, ${c.tunPackets} packets captured, ${c.returnsAccepted} returns accepted, ${e.returnsRejectedTotal} rejected`);
  const rejected = Object.entries(c.returnsRejected).filter(([, n]) => n > 0);
  if (rejected.length > 0) lines.push(`  rejected returns: ${rejected.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const drops = { noTarget: c.noTargetDrops, flowTableFull: c.flowTableFullDrops, send: c.sendDrops, deliver: c.deliverDrops };
  lines.push(`  drops: ${Object.entries(drops).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  for (const t of e.targets) {
    lines.push(`  target ${t.name} ${t.addr}:${t.port} ${t.state}: ${t.flows} flows, ${t.encapsulatedPackets} packets sent, ${t.returnsAccepted} returned`);
  }
  const byName = new Map(lab.appliances.map((a) => [a.name, a]));
  for (const [name, stats] of Object.entries(counters.appliances)) {
    const a = byName.get(name);
    lines.push(`  ${applianceStatusLine(name, stats, a === undefined ? undefined : { pid: a.pid, logFile: a.logFile })}`);
  }
  out(lines.join('\n'));
  return 0;
}

async function down(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { id: { type: 'string' }, all: { type: 'boolean' } } });
  if (values.all === true) {
    const removed = await cleanup(LAB_NS_PREFIX);
    out(removed.length === 0 ? 'no lab namespaces left' : `removed ${removed.join(', ')}`);
    return 0;
  }
  const id = values.id ?? DEFAULT_ID;
  const lab = attachLab(id);
  if (lab !== undefined) await lab.down();
  // Whatever the state file said, nothing of this lab may remain (a crashed `up` leaves namespaces only).
  const removed = await cleanup(labNamespaces(id).prefix);
  out(lab === undefined && removed.length === 0 ? `lab ${id} was not up` : `lab ${id} is down`);
  return 0;
}

export async function runLab(args: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  try {
    if (sub === 'up') return await up(rest, out);
    if (sub === 'status') return await status(rest, out);
    if (sub === 'down') return await down(rest, out);
    out(USAGE);
    return sub === undefined || sub === '--help' || sub === '-h' ? 0 : 2;
  } catch (err) {
    if (err instanceof LabError) {
      process.stderr.write(`lab: ${err.message}\n`);
      return err.code === 'LAB_USAGE' ? 2 : 1;
    }
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(`lab: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
}
