/**
 * The `antivirus` section of a policy (top level, and per scope as an override). Owned by the AV stage; the
 * policy schema (src/policy/schema.ts) embeds these schemas and the loader hands the parsed sections to the stage.
 */
import { z } from 'zod';

export const AntivirusSectionSchema = z.strictObject({
  enabled: z.boolean().default(false).meta({ description: 'Scan objects with ClamAV (docs/antivirus.md). Default false.' }),
});
export type AntivirusSection = z.output<typeof AntivirusSectionSchema>;

/** A scope's override: any field of the section, the rest inherited from the top level. */
export const AntivirusScopeSchema = z.strictObject({
  enabled: z.boolean().optional(),
});
export type AntivirusScopeSection = z.output<typeof AntivirusScopeSchema>;
