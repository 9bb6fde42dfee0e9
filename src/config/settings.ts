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
  adminListen: hostPort.default('0.0.0.0:8080').describe('Health/metrics HTTP listener, ADDR:PORT. Point the GWLB target group health check here (HTTP /healthz).'),
  policy: z.string().min(1).default('policies/default.yaml').describe('Policy file (YAML).'),
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
  // Verdict log (docs/logging.md).
  logStdout: z.stringbool().default(true).describe('Write the verdict log to stdout as JSON lines (for container log drivers).'),
  logFile: z.string().max(4096).default('').describe('Also append the verdict log to this file, rotated by size (empty: no file).'),
  logFileMaxBytes: z.coerce.number().int().min(4096).max(1_099_511_627_776).default(100 * 1024 * 1024).describe('Verdict log file size at which it rotates, bytes (100 MiB).'),
  logFileMaxFiles: z.coerce.number().int().min(1).max(1000).default(5).describe('Verdict log files kept, the live one included; the oldest is deleted.'),
  logQueueBytes: z.coerce.number().int().min(65_536).max(1_073_741_824).default(8 * 1024 * 1024).describe(
    'Verdict log queue cap per sink, bytes of serialized events (8 MiB); events past it are dropped and counted, the data plane never waits.',
  ),
  logRatePerS: z.coerce.number().min(0.001).max(1_000_000).default(1000).describe('Verdict log events per second per key (kind, stage, action, rule/signature/detector); burst one second; the rest are counted.'),
  logSampleEvery: z.coerce.number().int().min(1).max(1_000_000).default(1).describe('Write 1 of every N flow_verdict and flow_summary events per key (1: all); findings and anomalies are never sampled.'),
  logFlushMs: z.coerce.number().int().min(0).max(120_000).default(5000).describe('On shutdown: ms allowed to hand queued verdict log events to the sinks; the rest are counted as dropped.'),
  cloudwatchLogGroup: z.union([z.literal(''), z.string().regex(/^[.\-_/#A-Za-z0-9]{1,512}$/, 'a CloudWatch Logs group name')]).default('').describe(
    'Send the verdict log to this CloudWatch Logs group (empty: the sink is off). Region, credentials and endpoint follow the AWS SDK conventions (AWS_REGION, ...).',
  ),
  cloudwatchLogStream: z.union([z.literal(''), z.string().regex(/^[^:*]{1,512}$/, "a log stream name without ':' or '*'")]).default('').describe(
    'CloudWatch Logs stream (empty: the EC2 instance id from instance metadata, else hostname plus the process start time).',
  ),
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
  return Object.freeze(parsed.data);
}
