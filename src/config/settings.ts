/**
 * Appliance settings: every bound, timer and port of the data plane in one validated, frozen object
 * (fastify style: validated once at start, defaults written with units, then frozen).
 *
 * Each setting has a CLI flag and an environment variable (containers): flag `--max-flows` ↔ env
 * `GWLB_INSPECTOR_MAX_FLOWS`. Flags win over env, env over defaults. docs/configuration.md lists them all.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { FLOW_IDLE_OTHER_MS, FLOW_IDLE_TCP_MS } from '../flow/table.js';

export const ENV_PREFIX = 'GWLB_INSPECTOR_';

/** GWLB's own idle timeouts (DESIGN.md §2), defined once in the flow table: our flow state must outlive them. */
export const FLOW_IDLE_TCP_S = FLOW_IDLE_TCP_MS / 1000;
export const FLOW_IDLE_OTHER_S = FLOW_IDLE_OTHER_MS / 1000;

const ipv4 = z.string().regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, 'an IPv4 address like 10.0.0.5');
const hostPort = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}:\d{1,5}$/, 'ADDR:PORT with an IPv4 address, like 0.0.0.0:8080');

export const EXCEPTION_ACTIONS = ['drop', 'pass'] as const;

/** name, flag, type and doc of every setting; the CLI help and docs are generated from this table. */
export const SETTINGS_SCHEMA = z.strictObject({
  listen: ipv4.default('0.0.0.0').describe('Address to receive GENEVE on (the appliance address GWLB targets).'),
  port: z.coerce.number().int().min(1).max(65535).default(6081).describe('UDP port GWLB sends GENEVE to (always 6081 on AWS).'),
  adminListen: hostPort.default('0.0.0.0:8080').describe(
    'Health listener, ADDR:PORT: serves only GET /healthz. Point the GWLB target group health check here (HTTP /healthz, or TCP).',
  ),
  statsListen: hostPort.default('127.0.0.1:9090').describe(
    'Stats listener, ADDR:PORT: GET /stats (JSON) and /metrics (Prometheus). Loopback by default; a wider bind is opt-in and should come with --stats-token-file.',
  ),
  statsToken: z.string().max(4096).refine((v) => v === '' || (v.length >= 16 && !/\s/.test(v)), 'at least 16 characters, no whitespace').default('').describe(
    'Bearer token required on /stats and /metrics (empty: none). Prefer the environment variable or --stats-token-file: flags show in ps.',
  ),
  statsTokenFile: z.string().max(4096).default('').describe('File holding the bearer token for /stats and /metrics (read once at start; surrounding whitespace ignored).'),
  adminHeadersTimeoutMs: z.coerce.number().int().min(100).max(60_000).default(5000).describe(
    'Health and stats listeners: ms allowed to receive a request\'s complete headers (slow-header clients are closed).',
  ),
  adminRequestTimeoutMs: z.coerce.number().int().min(100).max(300_000).default(10_000).describe(
    'Health and stats listeners: ms allowed to receive a whole request (≥ --admin-headers-timeout-ms).',
  ),
  adminKeepAliveTimeoutMs: z.coerce.number().int().min(100).max(60_000).default(5000).describe('Health and stats listeners: ms a kept-alive connection may wait for its next request.'),
  adminIdleTimeoutMs: z.coerce.number().int().min(100).max(600_000).default(15_000).describe(
    'Health and stats listeners: ms of socket inactivity (including a connection that never sends a byte) before it is closed.',
  ),
  adminMaxConnections: z.coerce.number().int().min(2).max(10_000).default(64).describe(
    'Open connections per listener (health and stats each). A new connection at the cap closes the oldest idle one (no request in progress); only when every connection has a request in progress is the new one refused.',
  ),
  policy: z.string().min(1).default('policies/default.yaml').describe('Policy file (YAML).'),
  policyRoot: z.string().max(4096).default('').describe(
    "Directory tree policy includes must stay in (after resolving symbolic links); empty: the policy file's own directory.",
  ),
  policyLoadTimeoutMs: z.coerce.number().int().min(100).max(300_000).default(60_000).describe(
    'A policy load (start, reload) runs in a worker thread and is stopped after this many ms; a reload past it keeps the running policy.',
  ),
  policyLoadMaxMb: z.coerce.number().int().min(64).max(8192).default(512).describe(
    'Heap a policy load (and trial compile) may use, MiB; past it the load is stopped and a reload keeps the running policy.',
  ),
  workers: z.coerce.number().int().min(1).max(64).default(availableParallelism()).describe('Worker threads, each owning a shard of flows (default: one per core).'),
  returnMode: z.enum(['raw', 'udp']).default('raw').describe(
    "raw: return path through a raw IPv4 socket, source port = GWLB's port as GWLB requires (needs CAP_NET_RAW). " +
      'udp: plain UDP socket, source port = --port; only for environments without CAP_NET_RAW, NOT what GWLB expects.',
  ),
  maxFlows: z.coerce.number().int().min(16).max(16_000_000).default(1_000_000).describe(
    'Flow table cap across all workers; at the cap the least recently seen flow is evicted.',
  ),
  flowIdleTcpS: z.coerce.number().int().min(1).max(86_400).default(FLOW_IDLE_TCP_S).describe('TCP flow idle timeout, seconds (GWLB default 350; set ≥ the GWLB setting).'),
  flowIdleOtherS: z.coerce.number().int().min(1).max(86_400).default(FLOW_IDLE_OTHER_S).describe('UDP/other flow idle timeout, seconds (GWLB: 120).'),
  batchSize: z.coerce.number().int().min(1).max(1024).default(64).describe('Datagrams per recvmmsg/sendmmsg batch.'),
  socketBufferBytes: z.coerce.number().int().min(65_536).max(1_073_741_824).default(8 * 1024 * 1024).describe('SO_RCVBUF/SO_SNDBUF per socket, bytes (8 MiB).'),
  maxHeldBytes: z.coerce.number().int().min(0).max(4_294_967_296).default(64 * 1024 * 1024).describe(
    'Bytes of packets a worker may hold while stages decide (64 MiB); when full, new holds follow --on-memcap.',
  ),
  maxHeldPacketsPerFlow: z.coerce.number().int().min(1).max(100_000).default(64).describe('Packets held per flow before the hold budget counts as exhausted.'),
  onMalformed: z.enum(EXCEPTION_ACTIONS).default('drop').describe(
    'Exception policy for inner packets that fail to decode (truncated IP/TCP/UDP headers): drop or pass.',
  ),
  onMemcap: z.enum(EXCEPTION_ACTIONS).default('drop').describe('Exception policy when the hold memcap is reached: drop or pass the packet.'),
  reevaluateOnReload: z.stringbool().default(false).describe(
    'After a successful policy reload, decide established flows again by the new policy (default: they keep their verdict).',
  ),
  healthIntervalMs: z.coerce.number().int().min(50).max(60_000).default(1000).describe('Self-test probe interval, ms.'),
  healthMaxAgeMs: z.coerce.number().int().min(100).max(600_000).default(3500).describe('/healthz reports 503 when no self-test succeeded for a worker within this many ms.'),
  shutdownGraceMs: z.coerce.number().int().min(0).max(60_000).default(2000).describe('On SIGTERM: ms allowed for workers to flush before exit.'),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info').describe('Operational log level (JSON lines on stderr).'),
});

export type Settings = Readonly<z.infer<typeof SETTINGS_SCHEMA>>;

export function flagName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export function envName(name: string): string {
  return ENV_PREFIX + name.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

export class SettingsError extends Error {
  readonly code = 'GWI_ERR_SETTINGS';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SettingsError';
  }
}

/** Merges flag values over env values over defaults, validates, freezes. */
export function resolveSettings(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv): Settings {
  const raw: Record<string, string> = {};
  for (const name of Object.keys(SETTINGS_SCHEMA.shape)) {
    const fromFlag = flags[name];
    const fromEnv = env[envName(name)];
    if (fromFlag !== undefined) raw[name] = fromFlag;
    else if (fromEnv !== undefined && fromEnv !== '') raw[name] = fromEnv;
  }
  const parsed = SETTINGS_SCHEMA.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '');
      const source = flags[name] !== undefined ? `--${flagName(name)}` : envName(name);
      return `${source}: ${issue.message}`;
    });
    throw new SettingsError(lines.join('\n'));
  }
  const s = parsed.data;
  const problems: string[] = [];
  const source = (name: keyof Settings): string => (flags[name] !== undefined ? `--${flagName(name)}` : envName(name));
  if (s.adminRequestTimeoutMs < s.adminHeadersTimeoutMs) problems.push(`${source('adminRequestTimeoutMs')}: must be ≥ --admin-headers-timeout-ms (${s.adminHeadersTimeoutMs})`);
  if (s.statsToken !== '' && s.statsTokenFile !== '') problems.push(`${source('statsToken')}: give the token or --stats-token-file, not both`);
  const portOf = (hp: string): number => Number(hp.slice(hp.lastIndexOf(':') + 1));
  if (portOf(s.statsListen) !== 0 && portOf(s.statsListen) === portOf(s.adminListen)) {
    problems.push(`${source('statsListen')}: must use another port than --admin-listen (${s.adminListen}): stats are kept off the health listener`);
  }
  for (const name of ['adminListen', 'statsListen'] as const) if (portOf(s[name]) > 65535) problems.push(`${source(name)}: port above 65535`);
  if (problems.length > 0) throw new SettingsError(problems.join('\n'));
  return Object.freeze(s);
}
