/**
 * The verdict log: one JSON object per line, versioned (`schemaVersion`), one of six event kinds.
 *
 * This zod schema is the single definition: TypeScript types come from it, docs/log.schema.json is generated from
 * it (scripts/gen-log-schema.mjs; test/log/schema.test.ts fails when the committed file is stale), and
 * docs/logging.md explains each field. Objects are strict: a field that is not in the schema is an error, so a
 * producer cannot slip a raw matched value into an event under a new name.
 *
 * DLP findings carry a keyed hash (HMAC-SHA-256 with a per-appliance key) and a masked form of each match, never
 * the clear value (docs/architecture.md §5). Addresses and ports are written as the client (initiator) sent them.
 */
import { z } from 'zod';

/** Bumped on any change that can break a reader (a removed or renamed field, a narrowed type). */
export const LOG_SCHEMA_VERSION = 1;

export const EVENT_KINDS = ['flow_verdict', 'content_finding', 'anomaly', 'flow_summary', 'policy_reload', 'scanner_state'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export const ACTIONS = ['pass', 'drop', 'reject', 'alert'] as const;
export const STAGES = ['engine', 'firewall', 'stream', 'av', 'dlp', 'test'] as const;
export const DIRECTIONS = ['to_server', 'to_client'] as const;

/** Longest text field (rule names, reasons, file:line:column): keeps one event far below any sink's event limit. */
export const MAX_TEXT_CHARS = 512;
/** DLP matches listed per finding; the count says how many there were in all. */
export const MAX_DLP_MATCHES = 16;

const text = z.string().max(MAX_TEXT_CHARS);
const count = z.number().int().min(0);
const port = z.number().int().min(0).max(65535);
const ipText = z.string().max(45).describe('IPv4 dotted quad or IPv6 text (RFC 5952).');

/** Fields every event carries. */
const common = {
  schemaVersion: z.literal(LOG_SCHEMA_VERSION).describe('Version of this schema.'),
  time: z.iso.datetime({ offset: false }).describe('Wall-clock time of the event, ISO 8601 UTC with milliseconds.'),
  timeMs: z.number().int().min(0).describe('The same instant in ms since the Unix epoch (the timestamp CloudWatch Logs stores).'),
  applianceId: text.describe('Which appliance wrote the event (EC2 instance id, or hostname).'),
  policyVersion: text.nullable().describe('Version of the policy in force (its generation), null before one is loaded.'),
  suppressed: count.describe('Events of the same limiter key left out (rate limit or sampling) since the previous one written.'),
};

/** The flow an event is about. */
const flowFields = {
  flowId: text.describe('Flow id, unique within the appliance while the flow lives.'),
  endpointId: text.nullable().describe('GWLB endpoint id (vpce-…) from GENEVE option 1; null when the packet carried none.'),
  attachmentId: text.nullable().describe('GWLB attachment id from GENEVE option 2 (hex); null when the packet carried none.'),
  proto: z.number().int().min(0).max(255).describe('IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).'),
  src: ipText.describe('Client (initiator) address.'),
  srcPort: port.describe('Client port (0 for protocols without ports).'),
  dst: ipText.describe('Server (responder) address.'),
  dstPort: port.describe('Server port (0 for protocols without ports).'),
  bytesToServer: count.nullable().describe('Inner IP bytes seen client to server so far; null when the producer does not track them.'),
  bytesToClient: count.nullable().describe('Inner IP bytes seen server to client so far; null when not tracked.'),
  packetsToServer: count.nullable().describe('Packets seen client to server so far; null when not tracked.'),
  packetsToClient: count.nullable().describe('Packets seen server to client so far; null when not tracked.'),
};

/** Who decided and why (verdict provenance). */
const provenance = {
  stage: z.enum(STAGES).describe('Stage that decided.'),
  action: z.enum(ACTIONS).describe('pass, drop, reject (drop + RST/ICMP to both ends) or alert (pass and log).'),
  rule: text.nullable().describe('Firewall rule name; null for a default action or an exception policy.'),
  ruleSource: text.nullable().describe('file:line:column of the rule (or the scope, for a default action).'),
  signature: text.nullable().describe('Antivirus signature name; null unless the AV stage decided.'),
  detector: text.nullable().describe('DLP detector name; null unless the DLP stage decided.'),
  reason: text.describe('Stable reason code, e.g. firewall.rule, firewall.default, av.infected, dlp.match, av.not_scanned.'),
};

const FlowVerdict = z
  .strictObject({
    kind: z.literal('flow_verdict'),
    ...common,
    ...flowFields,
    ...provenance,
    direction: z.enum(DIRECTIONS).describe('Direction of the packet that brought the decision.'),
    scope: text.nullable().describe('Policy scope that applied.'),
    serverName: text.nullable().describe('TLS SNI or HTTP Host read for the flow, if any.'),
    serverNameSource: z.enum(['tls', 'http']).nullable().describe('Where serverName was read: the TLS ClientHello (SNI) or the HTTP Host header.'),
  })
  .describe('A stage decided a flow (drop, reject, alert, or a pass the policy asks to log).');

const AvFinding = z
  .strictObject({
    type: z.literal('av'),
    engine: text.describe('Scanner that answered, e.g. clamav.'),
    signature: text.describe('Signature name as the scanner reported it.'),
    objectName: text.nullable().describe('File name or URL path of the scanned object, if known.'),
    objectBytes: count.describe('Size of the scanned object.'),
    objectSha256: z.string().regex(/^[0-9a-f]{64}$/).nullable().describe('SHA-256 of the object, hex.'),
  })
  .describe('Antivirus: the object matched a signature.');

const DlpMatch = z
  .strictObject({
    keyedHash: z
      .string()
      .regex(/^hmac-sha256:[0-9a-f]{64}$/)
      .describe('HMAC-SHA-256 of the matched value with the appliance key: equal values give equal hashes, the value cannot be read back.'),
    masked: z
      .string()
      .max(64)
      .regex(/\*/)
      .describe('Masked form, e.g. ****-****-****-1234: at most a few characters of the value, the rest replaced by *.'),
    offset: count.describe('Byte offset of the match in the object.'),
  })
  .describe('One DLP match. There is deliberately no field for the clear value.');

const DlpFinding = z
  .strictObject({
    type: z.literal('dlp'),
    detector: text.describe('Detector that matched, e.g. credit_card.'),
    matchCount: count.describe('Matches in the object (only the first few are listed).'),
    matches: z.array(DlpMatch).max(MAX_DLP_MATCHES),
    objectName: text.nullable().describe('File name or URL path of the object, if known.'),
  })
  .describe('DLP: a detector matched.');

const ContentFinding = z
  .strictObject({
    kind: z.literal('content_finding'),
    ...common,
    ...flowFields,
    ...provenance,
    direction: z.enum(DIRECTIONS).describe('Direction of the stream the object travelled in.'),
    finding: z.discriminatedUnion('type', [AvFinding, DlpFinding]),
  })
  .describe('A content stage (AV, DLP) found something in a stream object.');

const Anomaly = z
  .strictObject({
    kind: z.literal('anomaly'),
    ...common,
    stage: z.enum(STAGES).describe('Stage or layer that saw the anomaly.'),
    code: text.describe('Stable anomaly code, e.g. inner_truncated, firewall.tcp_invalid, hold_memcap.'),
    action: z.enum(ACTIONS).describe('What the exception policy did.'),
    reason: text.describe('Why, in words (never packet bytes).'),
    flow: z.strictObject(flowFields).nullable().describe('The flow, when the anomaly belongs to one.'),
    count: count.describe('Occurrences this event stands for (1 unless aggregated).'),
  })
  .describe('A counted anomaly or exception-policy decision.');

const FlowSummary = z
  .strictObject({
    kind: z.literal('flow_summary'),
    ...common,
    ...flowFields,
    ...provenance,
    start: z.iso.datetime({ offset: false }).describe('First packet of the flow, ISO 8601 UTC.'),
    durationMs: count.describe('First to last packet, ms.'),
    end: z.enum(['closed', 'idle_timeout', 'evicted', 'shutdown']).describe('Why the flow ended.'),
  })
  .describe('A flow ended: totals and its final verdict (VPC Flow Logs with verdicts).');

const PolicyReload = z
  .strictObject({
    kind: z.literal('policy_reload'),
    ...common,
    trigger: z.enum(['start', 'sighup', 'file_change']).describe('What asked for the load.'),
    ok: z.boolean().describe('True when the new policy is now in force.'),
    file: text.describe('Policy file.'),
    errors: z.array(text).max(50).describe('file:line:column errors of a refused policy (first 50).'),
  })
  .describe('A policy load: applied, or refused with the running policy kept.');

const ScannerState = z
  .strictObject({
    kind: z.literal('scanner_state'),
    ...common,
    scanner: text.describe('Scanner, e.g. clamav.'),
    state: z.enum(['up', 'degraded', 'down']).describe('New state.'),
    previous: z.enum(['up', 'degraded', 'down', 'unknown']).describe('State before.'),
    detail: text.describe('Why, e.g. connect ECONNREFUSED, timeout after 2000 ms.'),
  })
  .describe('A scanner changed state (its fail mode then decides what unscanned content does).');

export const LogEventSchema = z
  .discriminatedUnion('kind', [FlowVerdict, ContentFinding, Anomaly, FlowSummary, PolicyReload, ScannerState])
  .meta({ title: 'gwlb-inspector verdict log event', description: `One line of the verdict log, schema version ${LOG_SCHEMA_VERSION}.` });

export type LogEvent = z.infer<typeof LogEventSchema>;
export type FlowVerdictEvent = z.infer<typeof FlowVerdict>;
export type ContentFindingEvent = z.infer<typeof ContentFinding>;
export type AnomalyEvent = z.infer<typeof Anomaly>;
export type FlowSummaryEvent = z.infer<typeof FlowSummary>;
export type PolicyReloadEvent = z.infer<typeof PolicyReload>;
export type ScannerStateEvent = z.infer<typeof ScannerState>;

/** JSON Schema (draft 2020-12) of one log line, as committed in docs/log.schema.json. */
export function logJsonSchema(): unknown {
  return z.toJSONSchema(LogEventSchema, { io: 'output' });
}

/** The exact text of docs/log.schema.json (stable formatting, trailing newline). */
export function logSchemaFileText(): string {
  return `${JSON.stringify(logJsonSchema(), null, 2)}\n`;
}

/** Fields the router fills in; producers supply the rest. */
export interface EventStamp {
  applianceId: string;
  policyVersion: string | null;
}

/** `time`, `timeMs` and `schemaVersion` for `nowMs` (epoch ms). */
export function timeFields(nowMs: number): { schemaVersion: typeof LOG_SCHEMA_VERSION; time: string; timeMs: number } {
  const ms = Math.floor(nowMs);
  return { schemaVersion: LOG_SCHEMA_VERSION, time: new Date(ms).toISOString(), timeMs: ms };
}
