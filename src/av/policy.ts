/**
 * The `antivirus` section of a policy (top level, and per scope as an override). Owned by the AV stage
 * (src/av/stage.ts); the policy schema (src/policy/schema.ts) embeds these schemas and the loader hands the parsed
 * sections to the stage, which merges a scope's override over the top level (`effectiveAntivirus`).
 *
 * Fail modes (docs/antivirus.md, "Fail modes"): every object the stage did not fully scan is "not scanned" with a
 * reason, never clean; the reason's fail mode says whether the flow passes (open) or is dropped (closed).
 */
import { z } from 'zod';

/** The object size limit, default: clamd's own limits in Debian's clamd.conf are 25 MiB (StreamMaxLength). */
export const AV_MAX_OBJECT_BYTES_DEFAULT = 20 * 1024 * 1024; // 20 MiB
/** Largest allowed object size limit (keep clamd's StreamMaxLength, MaxFileSize and MaxScanSize at or above it). */
export const AV_MAX_OBJECT_BYTES_LIMIT = 1024 * 1024 * 1024; // 1 GiB
/**
 * How long a held tail may wait for clamd: above the adapter's own reply deadline (REPLY_TIMEOUT_MS, 10 s), so a
 * slow clamd normally ends as the scan's own timeout first and this budget only catches what that does not bound.
 */
export const AV_HOLD_BUDGET_MS_DEFAULT = 15_000;
export const AV_HOLD_BUDGET_MS_LIMIT = 600_000;
/** Bytes of one direction waiting behind held tails (the tail itself, then pipelined objects behind it). */
export const AV_HOLD_BUDGET_BYTES_DEFAULT = 4 * 1024 * 1024; // 4 MiB
export const AV_HOLD_BUDGET_BYTES_LIMIT = 1024 * 1024 * 1024; // 1 GiB
/** Entries of skip_content_types / skip_domains / ports. */
export const AV_MAX_LIST_ENTRIES = 1024;

export const AV_MODES = ['block', 'alert'] as const;
export const AV_ACTIONS = ['reject', 'drop'] as const;
export const AV_DIRECTIONS = ['to_server', 'to_client'] as const;
export const FAIL_MODES = ['open', 'closed'] as const;
export type FailMode = (typeof FAIL_MODES)[number];

/** A media type or type prefix as it starts a Content-Type value: `video/`, `image/png`, `application/x-`. */
const CONTENT_TYPE_PREFIX = /^[a-z0-9!#$&^_.+-]+(\/[a-z0-9!#$&^_.+-]*)?$/i;
/** A host name, or `*.` and a domain suffix. */
const DOMAIN_PATTERN = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i;

const fields = {
  enabled: z.boolean().meta({ description: 'Scan objects with ClamAV (docs/antivirus.md). Default false.' }),
  mode: z.enum(AV_MODES).meta({
    description:
      'block: hold the tail of each object until the verdict and block infected objects (and, per the fail modes, unscanned ones). ' +
      'alert: never hold or block, only log findings. Default block.',
  }),
  action: z.enum(AV_ACTIONS).meta({
    description: 'What an infected object does to its flow in block mode: reject (drop and reset both ends) or drop. Default reject.',
  }),
  directions: z
    .array(z.enum(AV_DIRECTIONS))
    .min(1)
    .max(2)
    .meta({ description: 'Which objects are scanned: to_server (uploads, request bodies), to_client (downloads, response bodies). Default both.' }),
  ports: z
    .union([
      z.literal('any'),
      z
        .array(z.number().int().min(1).max(65535))
        .min(1)
        .max(AV_MAX_LIST_ENTRIES),
    ])
    .meta({ description: 'Server ports whose TCP flows are scanned, or any. Default any.' }),
  max_object_bytes: z
    .number()
    .int()
    .min(1)
    .max(AV_MAX_OBJECT_BYTES_LIMIT)
    .meta({
      description:
        `Object size limit, bytes (default ${AV_MAX_OBJECT_BYTES_DEFAULT}, 20 MiB). clamd sees the first max_object_bytes; an object past it is ` +
        'infected if that prefix is, else not scanned (size_limit) and on_oversize decides.',
    }),
  hold_budget_ms: z
    .number()
    .int()
    .min(1)
    .max(AV_HOLD_BUDGET_MS_LIMIT)
    .meta({
      description:
        `Longest a held packet of one direction may wait for the verdict, ms (default ${AV_HOLD_BUDGET_MS_DEFAULT}); then the objects it waits for are ` +
        'not scanned (timeout) and on_timeout decides. Top level only: it applies to every scope.',
    }),
  hold_budget_bytes: z
    .number()
    .int()
    .min(1)
    .max(AV_HOLD_BUDGET_BYTES_LIMIT)
    .meta({
      description:
        `Most bytes of one direction held while verdicts are awaited, bytes (default ${AV_HOLD_BUDGET_BYTES_DEFAULT}, 4 MiB); then as hold_budget_ms. ` +
        'Top level only.',
    }),
  on_oversize: z.enum(FAIL_MODES).meta({
    description:
      'Fail mode for objects past max_object_bytes (or the stream depth / decompression bound) whose scanned prefix was clean. ' +
      'Default open: large downloads are common and clamd cannot scan them whole anyway; the log says each was not scanned.',
  }),
  on_timeout: z.enum(FAIL_MODES).meta({
    description:
      "Fail mode when clamd does not answer within the adapter's deadlines or a hold budget runs out. Default closed: a sender can make an " +
      'object slow to scan (archive bombs), and one blocked object costs one download.',
  }),
  on_scanner_error: z.enum(FAIL_MODES).meta({
    description:
      'Fail mode when clamd is unreachable, breaks the connection, answers nonsense, or the scan pool is full (overloaded). ' +
      'Default closed: the appliance then reports unhealthy on /healthz, so GWLB steers new flows to an appliance whose scanner works.',
  }),
  on_incomplete: z.enum(FAIL_MODES).meta({
    description:
      'Fail mode for objects the appliance did not see whole: a gap in the stream, the stream ended inside the object, a framing or ' +
      'decoding error. Default closed: clamd judged bytes other than the receiver gets.',
  }),
  skip_content_types: z
    .array(z.string().min(1).max(128).regex(CONTENT_TYPE_PREFIX, { error: 'a media type or prefix, e.g. video/ or image/png' }))
    .max(AV_MAX_LIST_ENTRIES)
    .meta({
      description:
        'Responses whose Content-Type starts with one of these (case-insensitive) are not scanned, e.g. video/. The server chooses the ' +
        'Content-Type: skip only what you trust the servers to label honestly. Default none.',
    }),
  skip_domains: z
    .array(z.string().min(1).max(253).regex(DOMAIN_PATTERN, { error: 'a host name, or *. and a domain (*.example.com)' }))
    .max(AV_MAX_LIST_ENTRIES)
    .meta({
      description:
        'Requests (and their responses) whose Host is one of these are not scanned: exact names, or *.example.com for every name under ' +
        'example.com (not example.com itself). Case-insensitive, port ignored. Default none.',
    }),
};

export const AntivirusSectionSchema = z.strictObject({
  enabled: fields.enabled.default(false),
  mode: fields.mode.default('block'),
  action: fields.action.default('reject'),
  directions: fields.directions.default(['to_server', 'to_client']),
  ports: fields.ports.default('any'),
  max_object_bytes: fields.max_object_bytes.default(AV_MAX_OBJECT_BYTES_DEFAULT),
  hold_budget_ms: fields.hold_budget_ms.default(AV_HOLD_BUDGET_MS_DEFAULT),
  hold_budget_bytes: fields.hold_budget_bytes.default(AV_HOLD_BUDGET_BYTES_DEFAULT),
  on_oversize: fields.on_oversize.default('open'),
  on_timeout: fields.on_timeout.default('closed'),
  on_scanner_error: fields.on_scanner_error.default('closed'),
  on_incomplete: fields.on_incomplete.default('closed'),
  skip_content_types: fields.skip_content_types.default([]),
  skip_domains: fields.skip_domains.default([]),
});
export type AntivirusSection = z.output<typeof AntivirusSectionSchema>;

/**
 * A scope's override: any field of the section but the hold budgets (which the chain enforces per stage, so they
 * are appliance-wide), the rest inherited from the top level.
 */
export const AntivirusScopeSchema = z.strictObject({
  enabled: fields.enabled.optional(),
  mode: fields.mode.optional(),
  action: fields.action.optional(),
  directions: fields.directions.optional(),
  ports: fields.ports.optional(),
  max_object_bytes: fields.max_object_bytes.optional(),
  on_oversize: fields.on_oversize.optional(),
  on_timeout: fields.on_timeout.optional(),
  on_scanner_error: fields.on_scanner_error.optional(),
  on_incomplete: fields.on_incomplete.optional(),
  skip_content_types: fields.skip_content_types.optional(),
  skip_domains: fields.skip_domains.optional(),
});
export type AntivirusScopeSection = z.output<typeof AntivirusScopeSchema>;

/** The section with every default (a policy without an `antivirus` section). */
export function antivirusDefaults(): AntivirusSection {
  return AntivirusSectionSchema.parse({});
}

/** One scope's settings, compiled for the stage: the scope's override over the top level. */
export interface EffectiveAntivirus {
  readonly enabled: boolean;
  readonly block: boolean;
  readonly reject: boolean;
  readonly toServer: boolean;
  readonly toClient: boolean;
  /** null: any port. */
  readonly ports: ReadonlySet<number> | null;
  readonly maxObjectBytes: number;
  readonly onOversize: FailMode;
  readonly onTimeout: FailMode;
  readonly onScannerError: FailMode;
  readonly onIncomplete: FailMode;
  /** Lower case. */
  readonly skipContentTypes: readonly string[];
  /** Lower case, without a trailing dot. */
  readonly skipExact: ReadonlySet<string>;
  /** `.example.com` for `*.example.com`. */
  readonly skipSuffixes: readonly string[];
}

export function effectiveAntivirus(top: AntivirusSection, scope: AntivirusScopeSection | null): EffectiveAntivirus {
  const s = scope ?? {};
  const directions = s.directions ?? top.directions;
  const ports = s.ports ?? top.ports;
  const domains = (s.skip_domains ?? top.skip_domains).map((d) => d.toLowerCase().replace(/\.$/, ''));
  return {
    enabled: s.enabled ?? top.enabled,
    block: (s.mode ?? top.mode) === 'block',
    reject: (s.action ?? top.action) === 'reject',
    toServer: directions.includes('to_server'),
    toClient: directions.includes('to_client'),
    ports: ports === 'any' ? null : new Set(ports),
    maxObjectBytes: s.max_object_bytes ?? top.max_object_bytes,
    onOversize: s.on_oversize ?? top.on_oversize,
    onTimeout: s.on_timeout ?? top.on_timeout,
    onScannerError: s.on_scanner_error ?? top.on_scanner_error,
    onIncomplete: s.on_incomplete ?? top.on_incomplete,
    skipContentTypes: (s.skip_content_types ?? top.skip_content_types).map((c) => c.toLowerCase()),
    skipExact: new Set(domains.filter((d) => !d.startsWith('*.'))),
    skipSuffixes: domains.filter((d) => d.startsWith('*.')).map((d) => d.slice(1)),
  };
}

/** Whether a request Host (any case, with or without :port or a trailing dot) is in the skip lists. */
export function hostSkipped(cfg: EffectiveAntivirus, host: string | null): boolean {
  if (host === null || (cfg.skipExact.size === 0 && cfg.skipSuffixes.length === 0)) return false;
  const name = hostName(host);
  if (cfg.skipExact.has(name)) return true;
  for (const suffix of cfg.skipSuffixes) if (name.length > suffix.length && name.endsWith(suffix)) return true;
  return false;
}

/** Whether a response Content-Type value starts with one of the skipped prefixes. */
export function contentTypeSkipped(cfg: EffectiveAntivirus, contentType: string | null): boolean {
  if (contentType === null || cfg.skipContentTypes.length === 0) return false;
  const v = contentType.trim().toLowerCase();
  for (const prefix of cfg.skipContentTypes) if (v.startsWith(prefix)) return true;
  return false;
}

/** The name of a Host field value: lower case, without the port or a trailing dot; [v6] literals kept whole. */
export function hostName(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    return close < 0 ? h : h.slice(0, close + 1);
  }
  const colon = h.lastIndexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}
