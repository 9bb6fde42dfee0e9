/**
 * Appliance settings: every bound, timer and port of the data plane in one validated, frozen object
 * (fastify style: validated once at start, defaults written with units, then frozen).
 *
 * Each setting has a CLI flag and an environment variable (containers): flag `--max-flows` ↔ env
 * `GWLB_INSPECTOR_MAX_FLOWS`. Flags win over env, env over defaults. docs/configuration.md lists them all.
 */
import { availableParallelism, totalmem } from 'node:os';
import { z } from 'zod';
import { isClamdAddress } from '../av/address.js';
import { FLOW_IDLE_OTHER_MS, FLOW_IDLE_TCP_MS, flowTableBytes } from '../flow/table.js';
import { SLOT_BYTES, TX_SLOTS } from '../dataplane/engine.js';
import { MAX_GWLB_SOURCES, parseCidrList } from '../dataplane/source-guard.js';
import { isTestFaults } from './test-faults.js';

export const ENV_PREFIX = 'GWLB_INSPECTOR_';

/** GWLB's own idle timeouts (docs/architecture.md §2), defined once in the flow table: our flow state must outlive them. */
export const FLOW_IDLE_TCP_S = FLOW_IDLE_TCP_MS / 1000;
export const FLOW_IDLE_OTHER_S = FLOW_IDLE_OTHER_MS / 1000;

/** Sockets in a reuseport group the addon accepts (MAX_GROUP in native/gwlb_net.c is 256); one per worker. */
export const MAX_WORKERS = 64;
/**
 * --max-flows cap. A full flow table costs ~133 bytes per flow (FLOW_BYTES_PER_FLOW_FIXED + buckets,
 * src/flow/table.ts; GENEVE headers are interned per endpoint): 8,000,000 flows are ~1 GiB. Far above what one
 * appliance instance carries behind GWLB, far below 2^26.
 */
export const MAX_FLOWS_LIMIT = 8_000_000; // flows
/** recvmmsg/sendmmsg batch cap (MAX_BATCH in native/gwlb_net.c): 1024 × 8640-byte slots = 8.4 MiB per worker. */
export const MAX_BATCH_SIZE = 1024; // datagrams
/** Socket buffer cap: Linux doubles SO_RCVBUF/SO_SNDBUF for bookkeeping, so 256 MiB may commit 512 MiB. */
export const MAX_SOCKET_BUFFER_BYTES = 256 * 1024 * 1024; // 256 MiB
/** Hold memcap cap per worker. */
export const MAX_HELD_BYTES_LIMIT = 1024 * 1024 * 1024; // 1 GiB
/** Held packets per flow cap: releasing a flow's hold walks them all in one go. */
export const MAX_HELD_PACKETS_PER_FLOW_LIMIT = 4096; // packets
/** Longest accepted policy path (Linux PATH_MAX). */
export const MAX_PATH_CHARS = 4096;
/** Share of the machine's (or container's) memory the worst case of the bounds may take; the rest is the runtime's. */
export const MEMORY_BUDGET_SHARE = 0.8;
/**
 * Memory of one content-inspected flow besides its stream buffers (which the stream memcap bounds): its
 * inspector record, TCP stream with two reassembly directions, HTTP session with two parsers and their head
 * buffers' first allocation, cleared offsets and queues. Measured by test/content/flow-memory.test.ts.
 */
export const CONTENT_FLOW_BYTES = 8192;

const ipv4Octets = (s: string): boolean => s.split('.').every((o) => Number(o) <= 255);
const ipv4 = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/)
  .refine(ipv4Octets)
  .meta({ allowed: 'an IPv4 address like 10.0.0.5' });
const hostPort = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}:\d{1,5}$/)
  .refine((s) => ipv4Octets(s.slice(0, s.lastIndexOf(':'))) && Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535)
  .meta({ allowed: 'ADDR:PORT with an IPv4 address and a port 0–65535, like 0.0.0.0:8080' });

export const EXCEPTION_ACTIONS = ['drop', 'pass'] as const;

/** What a numeric setting accepts; kept in the schema's metadata for error messages and docs. */
export interface SettingRange {
  min: number;
  max: number;
  /** Plural unit, as shown after the numbers ("flows", "bytes", "ms"); empty for plain numbers (ports). */
  unit: string;
}

/** An integer setting in [min, max] of `unit`, with its default. */
function int(o: SettingRange & { default: number; description: string }) {
  const range: SettingRange = { min: o.min, max: o.max, unit: o.unit };
  return z.coerce.number().int().min(o.min).max(o.max).default(o.default).meta({ description: o.description, range });
}

/** name, flag, type and doc of every setting; the CLI help and docs are generated from this table. */
export const SETTINGS_SCHEMA = z.strictObject({
  listen: ipv4.default('0.0.0.0').describe('Address to receive GENEVE on (the appliance address GWLB targets).'),
  port: int({ min: 1, max: 65535, unit: '', default: 6081, description: 'UDP port GWLB sends GENEVE to (always 6081 on AWS).' }),
  adminListen: hostPort.default('0.0.0.0:8080').describe(
    'Health listener, ADDR:PORT: serves only GET /healthz. Point the GWLB target group health check here (HTTP /healthz, or TCP).',
  ),
  statsListen: hostPort.default('127.0.0.1:9090').describe(
    'Stats listener, ADDR:PORT: GET /stats (JSON) and /metrics (Prometheus). Loopback by default; a wider bind is opt-in and should come with --stats-token-file.',
  ),
  statsToken: z
    .string()
    .max(4096)
    .refine((v) => v === '' || (v.length >= 16 && !/\s/.test(v)), 'at least 16 characters, no whitespace')
    .meta({ allowed: 'empty, or at least 16 characters without whitespace' })
    .default('')
    .describe('Bearer token required on /stats and /metrics (empty: none). Prefer the environment variable or --stats-token-file: flags show in ps.'),
  statsTokenFile: z
    .string()
    .max(MAX_PATH_CHARS)
    .meta({ allowed: `empty, or a file path of up to ${MAX_PATH_CHARS} characters` })
    .default('')
    .describe('File holding the bearer token for /stats and /metrics (read once at start; surrounding whitespace ignored).'),
  adminHeadersTimeoutMs: int({ min: 100, max: 60_000, unit: 'ms', default: 5000, description: "Health and stats listeners: ms allowed to receive a request's complete headers (slow-header clients are closed)." }),
  adminRequestTimeoutMs: int({ min: 100, max: 300_000, unit: 'ms', default: 10_000, description: 'Health and stats listeners: ms allowed to receive a whole request (≥ --admin-headers-timeout-ms).' }),
  adminKeepAliveTimeoutMs: int({ min: 100, max: 60_000, unit: 'ms', default: 5000, description: 'Health and stats listeners: ms a kept-alive connection may wait for its next request.' }),
  adminIdleTimeoutMs: int({
    min: 100,
    max: 600_000,
    unit: 'ms',
    default: 15_000,
    description: 'Health and stats listeners: ms of socket inactivity (including a connection that never sends a byte) before it is closed.',
  }),
  adminMaxConnections: int({
    min: 2,
    max: 10_000,
    unit: 'connections',
    default: 64,
    description:
      'Open connections per listener (health and stats each). A new connection at the cap closes the oldest idle one (no request in progress); only when every connection has a request in progress is it refused.',
  }),
  policy: z.string().min(1).max(MAX_PATH_CHARS).meta({ allowed: `a file path of 1–${MAX_PATH_CHARS} characters` }).default('policies/default.yaml').describe('Policy file (YAML).'),
  policyRoot: z
    .string()
    .max(MAX_PATH_CHARS)
    .meta({ allowed: `empty, or a directory path of up to ${MAX_PATH_CHARS} characters` })
    .default('')
    .describe("Directory tree policy includes must stay in (after resolving symbolic links); empty: the policy file's own directory."),
  policyLoadTimeoutMs: int({
    min: 100,
    max: 300_000,
    unit: 'ms',
    default: 60_000,
    description: 'A policy load (start, reload) runs in a worker thread and is stopped after this many ms; a reload past it keeps the running policy.',
  }),
  policyLoadMaxMb: int({
    min: 64,
    max: 8192,
    unit: 'MiB',
    default: 512,
    description: 'Heap a policy load (and trial compile) may use, MiB; past it the load is stopped and a reload keeps the running policy.',
  }),
  workers: int({ min: 1, max: MAX_WORKERS, unit: 'threads', default: Math.min(availableParallelism(), MAX_WORKERS), description: 'Worker threads, each owning a shard of flows (default: one per core).' }),
  returnMode: z.enum(['raw', 'udp']).default('raw').describe(
    "raw: return path through a raw IPv4 socket, source port = GWLB's port as GWLB requires (needs CAP_NET_RAW). " +
      'udp: plain UDP socket, source port = --port; only for environments without CAP_NET_RAW, NOT what GWLB expects.',
  ),
  maxFlows: int({
    min: 16,
    max: MAX_FLOWS_LIMIT,
    unit: 'flows',
    default: 1_000_000,
    description: 'Flow table cap across all workers; at the cap the least recently seen flow is evicted. A full table costs ~133 bytes per flow (1,000,000 ≈ 127 MiB; tables are preallocated, pages commit as flows arrive).',
  }),
  flowIdleTcpS: int({ min: 1, max: 86_400, unit: 's', default: FLOW_IDLE_TCP_S, description: 'TCP flow idle timeout, seconds (GWLB default 350; set ≥ the GWLB setting).' }),
  flowIdleOtherS: int({ min: 1, max: 86_400, unit: 's', default: FLOW_IDLE_OTHER_S, description: 'UDP/other flow idle timeout, seconds (GWLB: 120).' }),
  batchSize: int({ min: 1, max: MAX_BATCH_SIZE, unit: 'datagrams', default: 64, description: 'Datagrams per recvmmsg/sendmmsg batch (each takes an 8640-byte receive slot per worker).' }),
  socketBufferBytes: int({
    min: 65_536,
    max: MAX_SOCKET_BUFFER_BYTES,
    unit: 'bytes',
    default: 8 * 1024 * 1024,
    description: 'SO_RCVBUF/SO_SNDBUF per socket, bytes (8 MiB; the kernel doubles it for bookkeeping).',
  }),
  maxHeldBytes: int({
    min: 0,
    max: MAX_HELD_BYTES_LIMIT,
    unit: 'bytes',
    default: 64 * 1024 * 1024,
    description:
      'Bytes of packets each worker may hold while stages decide (64 MiB), each packet charged its length + 512 bytes of bookkeeping; when full, new holds follow --on-memcap.',
  }),
  maxHeldPacketsPerFlow: int({ min: 1, max: MAX_HELD_PACKETS_PER_FLOW_LIMIT, unit: 'packets', default: 64, description: 'Packets held per flow before the hold budget counts as exhausted.' }),
  fragmentMaxDatagrams: int({
    min: 16,
    max: 262_144,
    unit: 'datagrams',
    default: 4096,
    description: "IP datagrams whose fragments a worker follows at once (virtual reassembly: later fragments follow the first fragment's verdict); a fragment of one more datagram is dropped.",
  }),
  fragmentMemcapBytes: int({
    min: 0,
    max: 1_073_741_824,
    unit: 'bytes',
    default: 4 * 1024 * 1024,
    description: 'Bytes of fragments a worker may hold while they wait for their first fragment (4 MiB); past it the fragment and its datagram are dropped.',
  }),
  fragmentTimeoutMs: int({
    min: 100,
    max: 60_000,
    unit: 'ms',
    default: 5000,
    description: 'How long a fragmented datagram is followed after its first fragment of any offset arrived, ms; fragments still waiting for their first fragment then are dropped.',
  }),
  fragmentMaxPerDatagram: int({
    min: 2,
    max: 1024,
    unit: 'fragments',
    default: 64,
    description: 'Fragments accepted per datagram; one more drops the datagram. The tracker keeps 16 bytes per accepted fragment, so at most --fragment-max-datagrams × this × 16 bytes per worker (4 MiB at the defaults).',
  }),
  contentMaxFlows: int({
    min: 16,
    max: 1_000_000,
    unit: 'flows',
    default: 16_384,
    description:
      `TCP flows each worker inspects at once when a content stage (antivirus, DLP) is enabled; one more follows the policy's settings.stream.on_memcap. Each costs up to ~${CONTENT_FLOW_BYTES} bytes besides its stream buffers.`,
  }),
  streamMemcapBytes: int({
    min: 1024 * 1024,
    max: 4 * 1024 * 1024 * 1024,
    unit: 'bytes',
    default: 128 * 1024 * 1024,
    description:
      'Bytes each worker may keep for stream reassembly (128 MiB): out-of-order segments and delivered bytes kept until acknowledged, to compare with retransmissions. Past it segments follow settings.stream.on_memcap.',
  }),
  testFaults: z
    .string()
    .max(256)
    .refine(isTestFaults, 'comma-separated WORKER:stall|crash:AFTER_MS[:DURATION_MS], like 0:stall:1000:4000')
    .meta({ allowed: 'empty, or comma-separated WORKER:stall|crash:AFTER_MS[:DURATION_MS], like 0:stall:1000:4000' })
    .default('')
    .describe('Tests only: make a worker stall (block its thread) or crash, once, to test health and restarts. Empty in production.'),
  enableTestStages: z.stringbool().default(false).describe(
    "Accept a policy's testing section (content stages that exist to test the chain contract). Off in production: a policy with that section is refused.",
  ),
  onMalformed: z.enum(EXCEPTION_ACTIONS).default('drop').describe(
    'Exception policy for inner packets that fail to decode (truncated IP/TCP/UDP headers): drop or pass.',
  ),
  onMemcap: z.enum(EXCEPTION_ACTIONS).default('drop').describe('Exception policy when the hold memcap is reached: drop or pass the packet.'),
  onInternalFault: z.enum(EXCEPTION_ACTIONS).default('drop').describe(
    'Exception policy for a packet whose processing hit an internal fault (a bug): drop or pass it unchanged. The rest of its batch is processed normally.',
  ),
  gwlbSources: z
    .string()
    .default('')
    .meta({ allowed: 'empty (any source), or up to 64 IPv4 CIDRs separated by commas, like 10.0.1.0/24,10.0.2.0/24' })
    .refine(
      (v) => {
        try {
          parseCidrList(v);
          return true;
        } catch {
          return false;
        }
      },
      { message: `a comma-separated list of at most ${MAX_GWLB_SOURCES} IPv4 CIDRs, like 10.0.1.0/24,10.0.2.0/24` },
    )
    .describe(
      "Outer source CIDRs GENEVE is accepted from, comma-separated (at most 64): the GWLB's subnets in the appliance VPC. " +
        'Other sources are dropped before decoding (counted as gwlb_source_not_allowed). Empty (default) accepts any source and logs a warning at start.',
    ),
  reevaluateOnReload: z.stringbool().default(false).describe(
    'After a successful policy reload, decide established flows again by the new policy (default: they keep their verdict).',
  ),
  healthIntervalMs: int({ min: 50, max: 60_000, unit: 'ms', default: 1000, description: 'Self-test probe interval, ms.' }),
  healthMaxAgeMs: int({ min: 100, max: 600_000, unit: 'ms', default: 3500, description: '/healthz reports 503 when no self-test succeeded for a worker within this many ms.' }),
  shutdownGraceMs: int({ min: 0, max: 60_000, unit: 'ms', default: 2000, description: 'On SIGTERM: ms allowed for workers to flush before exit.' }),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info').describe('Operational log level (JSON lines on stderr).'),
  clamd: z.string().refine(isClamdAddress, 'unix:/path/clamd.sock or tcp:host:port').meta({ allowed: 'unix:/path/clamd.sock or tcp:host:port' }).default('unix:/run/clamav/clamd.ctl').describe(
    "Where the operator's clamd listens for the antivirus stage: unix:/path/clamd.sock or tcp:host:port (default: Debian clamav-daemon's socket). The appliance never starts a scanner itself. See docs/antivirus.md.",
  ),
  dlpHashKeyFile: z
    .string()
    .max(MAX_PATH_CHARS)
    .meta({ allowed: `empty, or a file path of up to ${MAX_PATH_CHARS} characters` })
    .default('')
    .describe(
      'File holding the key of the keyed hash (HMAC-SHA-256) in DLP findings: 32–4096 bytes after trimming whitespace, read once at start. Empty: a random key per process start, so equal values hash alike only within one run. See docs/dlp.md.',
    ),
  // Verdict log (docs/logging.md).
  logStdout: z.stringbool().default(true).describe('Write the verdict log to stdout as JSON lines (for container log drivers).'),
  logFile: z
    .string()
    .max(MAX_PATH_CHARS)
    .meta({ allowed: `empty, or a file path of up to ${MAX_PATH_CHARS} characters` })
    .default('')
    .describe('Also append the verdict log to this file, rotated by size (empty: no file).'),
  logFileMaxBytes: int({ min: 4096, max: 1_099_511_627_776, unit: 'bytes', default: 100 * 1024 * 1024, description: 'Verdict log file size at which it rotates, bytes (100 MiB).' }),
  logFileMaxFiles: int({ min: 1, max: 1000, unit: 'files', default: 5, description: 'Verdict log files kept, the live one included; the oldest is deleted.' }),
  logQueueBytes: int({
    min: 65_536,
    max: 1_073_741_824,
    unit: 'bytes',
    default: 8 * 1024 * 1024,
    description: 'Verdict log queue cap per sink, bytes of serialized events (8 MiB); events past it are dropped and counted, the data plane never waits.',
  }),
  logRatePerS: z
    .coerce.number()
    .min(0.001)
    .max(1_000_000)
    .default(1000)
    .meta({
      description: 'Verdict log events per second per key (kind, stage, action, rule/signature/detector); burst one second; the rest are counted.',
      range: { min: 0.001, max: 1_000_000, unit: 'events/s' },
    }),
  logSampleEvery: int({
    min: 1,
    max: 1_000_000,
    unit: 'events',
    default: 1,
    description: 'Write 1 of every N flow_verdict and flow_summary events per key (1: all); findings and anomalies are never sampled.',
  }),
  metricsIntervalS: int({
    min: 0,
    max: 3600,
    unit: 's',
    default: 60,
    description:
      'Write appliance metrics (packets, bytes and drops per second, flows, held bytes, content verdicts) to the verdict log every this many seconds, in CloudWatch Embedded Metric Format (namespace GwlbInspector; the Auto Scaling group scales on PacketsPerSecond). 0: off.',
  }),
  logFlushMs: int({ min: 0, max: 120_000, unit: 'ms', default: 5000, description: 'On shutdown: ms allowed to hand queued verdict log events to the sinks; the rest are counted as dropped.' }),
  cloudwatchLogGroup: z
    .union([z.literal(''), z.string().regex(/^[.\-_/#A-Za-z0-9]{1,512}$/, 'a CloudWatch Logs group name')])
    .meta({ allowed: 'empty (off), or a CloudWatch Logs group name: 1–512 of A-Z a-z 0-9 . - _ / #' })
    .default('')
    .describe(
    'Send the verdict log to this CloudWatch Logs group (empty: the sink is off). Region, credentials and endpoint follow the AWS SDK conventions (AWS_REGION, ...).',
  ),
  cloudwatchLogStream: z
    .union([z.literal(''), z.string().regex(/^[^:*]{1,512}$/, "a log stream name without ':' or '*'")])
    .meta({ allowed: "empty (instance id, else hostname + start time), or 1–512 characters without ':' or '*'" })
    .default('')
    .describe(
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

const BYTE_UNITS: Array<[number, string]> = [
  [1024 ** 3, 'GiB'],
  [1024 ** 2, 'MiB'],
  [1024, 'KiB'],
];

/** 268435456 → "256 MiB"; other byte counts with one decimal of the largest unit that fits. */
export function formatBytes(n: number): string {
  for (const [size, unit] of BYTE_UNITS) {
    if (n >= size) return `${Number.isInteger(n / size) ? n / size : (n / size).toFixed(1)} ${unit}`;
  }
  return `${n} bytes`;
}

function schemaMeta(schema: unknown): Record<string, unknown> {
  const own = (schema as z.ZodType).meta() ?? {};
  const inner = (schema as { def?: { innerType?: z.ZodType } }).def?.innerType;
  return { ...(inner?.meta() ?? {}), ...own };
}

/** The range of a numeric setting (undefined for the others). */
export function settingRange(name: string): SettingRange | undefined {
  const schema = (SETTINGS_SCHEMA.shape as Record<string, unknown>)[name];
  return schemaMeta(schema)['range'] as SettingRange | undefined;
}

/** What a setting accepts, in words: "16 to 8,000,000 flows", "raw or udp", "an IPv4 address like 10.0.0.5". */
export function allowedValues(name: string): string {
  const range = settingRange(name);
  if (range !== undefined) {
    const span = `${range.min.toLocaleString('en-US')} to ${range.max.toLocaleString('en-US')}${range.unit === '' ? '' : ' ' + range.unit}`;
    return range.unit === 'bytes' ? `${span} (${formatBytes(range.max)} at most)` : span;
  }
  const schema = (SETTINGS_SCHEMA.shape as Record<string, unknown>)[name] as { def?: { innerType?: unknown } } | undefined;
  const meta = schemaMeta(schema);
  if (typeof meta['allowed'] === 'string') return meta['allowed'];
  const inner = schema?.def?.innerType as { options?: readonly string[] } | undefined;
  if (inner?.options !== undefined) return `${inner.options.slice(0, -1).join(', ')} or ${inner.options.at(-1) ?? ''}`;
  return 'true or false (also 1/0, yes/no, on/off)';
}

function problem(issue: z.core.$ZodIssue, value: string): string {
  if (issue.code === 'too_big' || issue.code === 'too_small') {
    if (issue.origin !== 'string') return 'is out of range';
    return value === '' ? 'is empty' : 'is too long';
  }
  if (issue.code === 'invalid_type' && issue.expected === 'int') return 'is not a whole number';
  if (issue.code === 'invalid_type' && issue.expected === 'number') return 'is not a number';
  return value === '' ? 'is empty' : 'is not valid';
}

/**
 * Worst-case memory of the data plane's bounds, bytes: every flow table full (plus the previous half-size
 * generation while the last doubling copies), every worker's hold memcap full, every receive and tx slot, and
 * every worker's fragment memcap and tracker full, the receive buffer of each worker's UDP socket and the send
 * buffer of its raw socket full (the kernel
 * doubles both). The JS runtime itself (V8 heaps, code) comes on top: see MEMORY_BUDGET_SHARE.
 */
export function worstCaseMemory(
  s: Pick<
    Settings,
    'workers' | 'maxFlows' | 'maxHeldBytes' | 'batchSize' | 'socketBufferBytes' | 'fragmentMemcapBytes' | 'fragmentMaxDatagrams' | 'fragmentMaxPerDatagram' | 'contentMaxFlows' | 'streamMemcapBytes'
  >,
): {
  flowTables: number;
  heldPackets: number;
  fragments: number;
  streams: number;
  packetBuffers: number;
  socketBuffers: number;
  total: number;
} {
  const perWorkerFlows = Math.max(16, Math.ceil(s.maxFlows / s.workers)); // as worker-main.ts sizes the table
  // Preallocated at --max-flows (never grows): pages are committed only as flows are written.
  const flowTables = s.workers * flowTableBytes(perWorkerFlows);
  const heldPackets = s.workers * s.maxHeldBytes;
  // Fragments waiting for their first fragment, and the tracker's 16 bytes per accepted fragment.
  const fragments = s.workers * (s.fragmentMemcapBytes + s.fragmentMaxDatagrams * s.fragmentMaxPerDatagram * 16);
  const packetBuffers = s.workers * (s.batchSize + TX_SLOTS) * SLOT_BYTES;
  const socketBuffers = s.workers * 2 * 2 * s.socketBufferBytes;
  // Content inspection: every inspected flow's state and the reassembly memcap full.
  const streams = s.workers * (s.contentMaxFlows * CONTENT_FLOW_BYTES + s.streamMemcapBytes);
  return { flowTables, heldPackets, fragments, streams, packetBuffers, socketBuffers, total: flowTables + heldPackets + fragments + streams + packetBuffers + socketBuffers };
}

/** Memory this process may use: the machine's, or the container's (cgroup) limit when lower. */
export function availableMemoryBytes(): number {
  const constrained = process.constrainedMemory();
  return constrained > 0 ? Math.min(totalmem(), constrained) : totalmem();
}

/**
 * Merges flag values over env values over defaults, validates, freezes. Each invalid value gives one line
 * naming its flag (or environment variable), the value, and what is allowed with its unit. Then the bounds
 * together must fit MEMORY_BUDGET_SHARE of `memoryBytes` (default: this machine's or container's memory).
 */
export function resolveSettings(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv, memoryBytes = availableMemoryBytes()): Settings {
  const raw: Record<string, string> = {};
  for (const name of Object.keys(SETTINGS_SCHEMA.shape)) {
    const fromFlag = flags[name];
    const fromEnv = env[envName(name)];
    if (fromFlag !== undefined) raw[name] = fromFlag;
    else if (fromEnv !== undefined && fromEnv !== '') raw[name] = fromEnv;
  }
  const parsed = SETTINGS_SCHEMA.safeParse(raw);
  if (!parsed.success) {
    const lines: string[] = [];
    const seen = new Set<string>();
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '');
      if (seen.has(name)) continue; // one line per setting
      seen.add(name);
      const source = flags[name] !== undefined ? `--${flagName(name)}` : envName(name);
      const value = raw[name] ?? '';
      lines.push(`${source}: ${JSON.stringify(value)} ${problem(issue, value)}; allowed: ${allowedValues(name)}`);
    }
    throw new SettingsError(lines.join('\n'));
  }
  const settings = parsed.data;
  const problems: string[] = [];
  const source = (name: keyof Settings): string => (flags[name] !== undefined ? `--${flagName(name)}` : envName(name));
  if (settings.adminRequestTimeoutMs < settings.adminHeadersTimeoutMs) problems.push(`${source('adminRequestTimeoutMs')}: must be ≥ --admin-headers-timeout-ms (${settings.adminHeadersTimeoutMs})`);
  if (settings.statsToken !== '' && settings.statsTokenFile !== '') problems.push(`${source('statsToken')}: give the token or --stats-token-file, not both`);
  const portOf = (hp: string): number => Number(hp.slice(hp.lastIndexOf(':') + 1));
  if (portOf(settings.statsListen) !== 0 && portOf(settings.statsListen) === portOf(settings.adminListen)) {
    problems.push(`${source('statsListen')}: must use another port than --admin-listen (${settings.adminListen}): stats are kept off the health listener`);
  }
  if (problems.length > 0) throw new SettingsError(problems.join('\n'));
  const need = worstCaseMemory(settings);
  const budget = Math.floor(memoryBytes * MEMORY_BUDGET_SHARE);
  if (need.total > budget) {
    throw new SettingsError(
      `settings need up to ${formatBytes(need.total)} in the worst case (flow tables ${formatBytes(need.flowTables)}, ` +
        `held packets ${formatBytes(need.heldPackets)} = --max-held-bytes × --workers, fragments ${formatBytes(need.fragments)}, streams ${formatBytes(need.streams)}, socket buffers ${formatBytes(need.socketBuffers)}, ` +
        `packet slots ${formatBytes(need.packetBuffers)}) but ${Math.round(MEMORY_BUDGET_SHARE * 100)} % of this machine's memory is ${formatBytes(budget)}: ` +
        'lower --max-flows, --max-held-bytes, --stream-memcap-bytes, --content-max-flows, --socket-buffer-bytes or --workers',
    );
  }
  return Object.freeze(settings);
}
