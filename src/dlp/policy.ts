/**
 * The `dlp` section of a policy (top level, and per scope as an override). Owned by the DLP stage; the policy
 * schema (src/policy/schema.ts) embeds these schemas, and the loader calls checkDlpSection so that what zod cannot
 * see (a pattern RE2 cannot compile, an unknown pack or detector name) is reported with file:line:column like any
 * other policy error. docs/dlp.md is the reference.
 */
import { z } from 'zod';
import type { PathSegment } from '../policy/errors.js';
import { DLP_MAX_CUSTOM_DETECTORS, DetectorSchema, LIKELIHOODS, builtinPacks, detectorProblems, type DetectorSpec } from './detector.js';

/** Packs enabled when the section names none. */
export const DLP_DEFAULT_PACKS = ['payment', 'identity', 'credentials'] as const;
/** Scan depth caps, bytes per flow direction. */
export const DLP_MAX_SCAN_DEPTH_BYTES = 1 << 30;
export const DLP_DEFAULT_SCAN_DEPTH_TO_SERVER_BYTES = 16 * 1024 * 1024;
export const DLP_DEFAULT_SCAN_DEPTH_TO_CLIENT_BYTES = 1024 * 1024;

const packName = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/);
const depth = (def: number) =>
  z
    .number()
    .int()
    .min(0)
    .max(DLP_MAX_SCAN_DEPTH_BYTES)
    .default(def)
    .meta({ description: `Bytes scanned per flow in this direction (headers and decoded bodies together), 0–${DLP_MAX_SCAN_DEPTH_BYTES}; later bytes pass unscanned. Default ${def}.` });

const DetectorOverrideSchema = z.strictObject({
  enabled: z.boolean().optional().meta({ description: 'false switches this detector off. Default: on when its pack is.' }),
  min_likelihood: z.enum(LIKELIHOODS).optional().meta({ description: "This detector's threshold (overrides the section's min_likelihood)." }),
  min_count: z.number().int().min(1).max(1000).optional().meta({ description: "Matches per object before it reports (overrides the detector's min_count)." }),
});
export type DetectorOverride = z.output<typeof DetectorOverrideSchema>;

const fields = {
  mode: z
    .enum(['block', 'alert'])
    .meta({ description: 'block: a finding decides the flow (`action`) before the packet that completes the match leaves; alert: pass and log. Default block.' }),
  action: z.enum(['reject', 'drop']).meta({ description: 'Block mode verdict: reject (drop + reset both ends) or drop. Default reject.' }),
  directions: z
    .array(z.enum(['to_server', 'to_client']))
    .min(1)
    .max(2)
    .meta({ description: 'Stream directions scanned. Default [to_server]: data loss is data leaving through the client, so responses are not scanned unless listed.' }),
  packs: z.array(packName).max(32).meta({ description: `Built-in packs (rules/dlp/*.yaml) enabled. Default [${DLP_DEFAULT_PACKS.join(', ')}].` }),
  min_likelihood: z.enum(LIKELIHOODS).meta({ description: 'A match counts when its likelihood reaches this level. Default LIKELY.' }),
  detectors: z.record(z.string().max(64), DetectorOverrideSchema).meta({ description: 'Per-detector overrides by name: enabled, min_likelihood, min_count. Default none.' }),
  custom: z.array(DetectorSchema).max(DLP_MAX_CUSTOM_DETECTORS).meta({ description: 'Custom detectors, same fields as the packs (docs/dlp.md). Default none.' }),
  scan_depth_bytes: z
    .strictObject({ to_server: depth(DLP_DEFAULT_SCAN_DEPTH_TO_SERVER_BYTES), to_client: depth(DLP_DEFAULT_SCAN_DEPTH_TO_CLIENT_BYTES) })
    .meta({ description: `Scan depth per flow direction. Default to_server ${DLP_DEFAULT_SCAN_DEPTH_TO_SERVER_BYTES}, to_client ${DLP_DEFAULT_SCAN_DEPTH_TO_CLIENT_BYTES}.` }),
  hold_budget_ms: z.number().int().min(1).max(60_000).meta({ description: 'Longest a packet may wait for a pending match (trailing boundary or keyword lookahead), ms. Default 2000.' }),
  hold_budget_bytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .meta({ description: 'Most stream bytes of one direction held for pending matches. Default 1048576.' }),
  fail: z.enum(['open', 'closed']).meta({ description: 'When a hold budget runs out: open passes the held bytes, closed decides the flow with `action`. Default closed.' }),
};

export const DlpSectionSchema = z.strictObject({
  enabled: z.boolean().default(false).meta({ description: 'Run the DLP detectors (docs/dlp.md). Default false.' }),
  mode: fields.mode.default('block'),
  action: fields.action.default('reject'),
  directions: fields.directions.default(['to_server']),
  packs: fields.packs.default([...DLP_DEFAULT_PACKS]),
  min_likelihood: fields.min_likelihood.default('LIKELY'),
  detectors: fields.detectors.default({}),
  custom: fields.custom.default([]),
  scan_depth_bytes: fields.scan_depth_bytes.default({ to_server: DLP_DEFAULT_SCAN_DEPTH_TO_SERVER_BYTES, to_client: DLP_DEFAULT_SCAN_DEPTH_TO_CLIENT_BYTES }),
  hold_budget_ms: fields.hold_budget_ms.default(2000),
  hold_budget_bytes: fields.hold_budget_bytes.default(1024 * 1024),
  fail: fields.fail.default('closed'),
});
export type DlpSection = z.output<typeof DlpSectionSchema>;

/**
 * A scope's override: any field of the section but the hold budgets (one pair per stage, the top level's), the
 * rest inherited from the top level.
 */
export const DlpScopeSchema = z.strictObject({
  enabled: z.boolean().optional().meta({ description: 'Run DLP in this scope (inherits the top-level enabled).' }),
  mode: fields.mode.optional(),
  action: fields.action.optional(),
  directions: fields.directions.optional(),
  packs: fields.packs.optional(),
  min_likelihood: fields.min_likelihood.optional(),
  detectors: fields.detectors.optional(),
  custom: fields.custom.optional(),
  scan_depth_bytes: z
    .strictObject({ to_server: depth(DLP_DEFAULT_SCAN_DEPTH_TO_SERVER_BYTES).optional(), to_client: depth(DLP_DEFAULT_SCAN_DEPTH_TO_CLIENT_BYTES).optional() })
    .optional(),
  fail: fields.fail.optional(),
});
export type DlpScopeSection = z.output<typeof DlpScopeSchema>;

/** The section a scope runs with: the scope's fields over the top-level section's. */
export function effectiveDlp(section: DlpSection, scope: DlpScopeSection | null): DlpSection {
  if (scope === null) return section;
  const out = { ...section };
  for (const [k, v] of Object.entries(scope)) {
    if (v === undefined) continue;
    if (k === 'scan_depth_bytes') out.scan_depth_bytes = { ...section.scan_depth_bytes, ...(v as object) } as DlpSection['scan_depth_bytes'];
    else (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** Reports problems zod cannot see; `path` is relative to the section. */
export function checkDlpSection(section: DlpSection | DlpScopeSection, report: (path: PathSegment[], message: string) => void): void {
  const packs = builtinPacks();
  const known = new Set<string>();
  for (const p of packs.values()) for (const d of p.detectors) known.add(d.name);
  (section.packs ?? []).forEach((name, i) => {
    if (!packs.has(name)) report(['packs', i], `unknown DLP pack ${JSON.stringify(name)}; built-in packs: ${[...packs.keys()].join(', ')}`);
  });
  const custom: readonly DetectorSpec[] = section.custom ?? [];
  const seen = new Set<string>();
  custom.forEach((spec, i) => {
    if (known.has(spec.name)) report(['custom', i, 'name'], `${spec.name} is a built-in detector: give a custom detector its own name (tune built-ins under detectors)`);
    if (seen.has(spec.name)) report(['custom', i, 'name'], `duplicate custom detector ${spec.name}`);
    seen.add(spec.name);
    for (const [field, message] of detectorProblems(spec)) report(['custom', i, field], message);
  });
  for (const name of Object.keys(section.detectors ?? {})) {
    if (!known.has(name) && !seen.has(name)) report(['detectors', name], `unknown DLP detector ${JSON.stringify(name)}`);
  }
}
