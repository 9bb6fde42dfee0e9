/**
 * Events the content stages and the content inspector write (src/pipeline/content.ts ContentLog) arrive from a
 * worker already shaped as schema events without the router's stamp. They cross the worker boundary as
 * `unknown`, so each is checked against the schema (strict: no field outside it, so no raw matched value can ride
 * along) before the router stamps and writes it; anything else is refused (null) and counted by the caller.
 */
import { LogEventSchema, timeFields } from './schema.js';
import type { UnstampedEvent } from './router.js';

export function contentLogEvent(raw: unknown): UnstampedEvent | null {
  if (typeof raw !== 'object' || raw === null || typeof (raw as { kind?: unknown }).kind !== 'string') return null;
  const probe = { ...(raw as Record<string, unknown>), ...timeFields(0), applianceId: 'x', policyVersion: null, suppressed: 0 };
  const r = LogEventSchema.safeParse(probe);
  if (!r.success) return null;
  const { schemaVersion: _v, time: _t, timeMs: _m, applianceId: _a, policyVersion: _p, suppressed: _s, ...rest } = r.data;
  return rest as UnstampedEvent;
}
