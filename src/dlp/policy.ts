/**
 * The `dlp` section of a policy (top level, and per scope as an override). Owned by the DLP stage; the policy
 * schema (src/policy/schema.ts) embeds these schemas, and the loader calls checkDlpSection so that what zod cannot
 * see (a pattern RE2 cannot compile) is reported with file:line:column like any other policy error.
 */
import { z } from 'zod';
import type { PathSegment } from '../policy/errors.js';

export const DlpSectionSchema = z.strictObject({
  enabled: z.boolean().default(false).meta({ description: 'Run the DLP detectors (docs/dlp.md). Default false.' }),
});
export type DlpSection = z.output<typeof DlpSectionSchema>;

export const DlpScopeSchema = z.strictObject({
  enabled: z.boolean().optional(),
});
export type DlpScopeSection = z.output<typeof DlpScopeSchema>;

/** Reports problems zod cannot see; `path` is relative to the section. */
export function checkDlpSection(_section: DlpSection | DlpScopeSection, _report: (path: PathSegment[], message: string) => void): void {}
