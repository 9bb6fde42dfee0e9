import t from 'tap';
import { readFileSync } from 'node:fs';
import { EVENT_KINDS, LOG_SCHEMA_VERSION, LogEventSchema, logSchemaFileText, timeFields } from '../../src/log/schema.js';
import { SAMPLE_EVENTS } from './fixtures/events.js';

// CI gate: the committed JSON Schema must be what the zod schema generates today.
t.test('docs/log.schema.json is up to date', async (t) => {
  const committed = readFileSync(new URL('../../docs/log.schema.json', import.meta.url), 'utf8');
  t.equal(committed, logSchemaFileText(), 'docs/log.schema.json is stale: run npx tsc -p . && node scripts/gen-log-schema.mjs');
});

t.test('the JSON Schema lists every event kind as a strict object', async (t) => {
  const s = JSON.parse(logSchemaFileText()) as { oneOf: { properties: { kind: { const: string } }; additionalProperties: boolean; required: string[] }[] };
  t.same(s.oneOf.map((o) => o.properties.kind.const), [...EVENT_KINDS]);
  for (const o of s.oneOf) {
    t.equal(o.additionalProperties, false, `${o.properties.kind.const} rejects unknown fields`);
    for (const f of ['schemaVersion', 'time', 'timeMs', 'applianceId', 'policyVersion', 'suppressed']) t.ok(o.required.includes(f), `${o.properties.kind.const} requires ${f}`);
  }
});

t.test('one hand-written event of each kind is valid', async (t) => {
  t.same([...new Set(SAMPLE_EVENTS.map((e) => e.kind))], [...EVENT_KINDS]);
  for (const e of SAMPLE_EVENTS) {
    const r = LogEventSchema.safeParse(e);
    t.ok(r.success, `${e.kind}: ${r.success ? '' : JSON.stringify(r.error.issues)}`);
  }
});

t.test('a DLP match has no place for the clear value', async (t) => {
  const dlp = SAMPLE_EVENTS.find((e) => e.kind === 'content_finding' && e.finding.type === 'dlp');
  if (dlp === undefined || dlp.kind !== 'content_finding' || dlp.finding.type !== 'dlp') throw new Error('fixture');
  const match = dlp.finding.matches[0];
  const withValue = { ...dlp, finding: { ...dlp.finding, matches: [{ ...match, value: '4111111111111111' }] } };
  t.notOk(LogEventSchema.safeParse(withValue).success, 'an extra value field is refused');
  const unmasked = { ...dlp, finding: { ...dlp.finding, matches: [{ ...match, masked: '4111111111111111' }] } };
  t.notOk(LogEventSchema.safeParse(unmasked).success, 'a masked form without a mask is refused');
  const rawHash = { ...dlp, finding: { ...dlp.finding, matches: [{ ...match, keyedHash: '4111111111111111' }] } };
  t.notOk(LogEventSchema.safeParse(rawHash).success, 'the keyed hash must be a hex HMAC');
});

t.test('wrong version, unknown kind, missing common field and local time are refused', async (t) => {
  const base = SAMPLE_EVENTS[0]!;
  t.notOk(LogEventSchema.safeParse({ ...base, schemaVersion: LOG_SCHEMA_VERSION + 1 }).success);
  t.notOk(LogEventSchema.safeParse({ ...base, kind: 'verdict' }).success);
  const { applianceId: _drop, ...noAppliance } = base;
  t.notOk(LogEventSchema.safeParse(noAppliance).success);
  t.notOk(LogEventSchema.safeParse({ ...base, time: '2026-12-02T14:00:00+01:00' }).success, 'times are UTC');
});

t.test('timeFields gives ISO 8601 UTC and epoch ms of the same instant', async (t) => {
  const f = timeFields(Date.UTC(2026, 0, 2, 3, 4, 5, 678) + 0.4);
  t.same(f, { schemaVersion: 1, time: '2026-01-02T03:04:05.678Z', timeMs: Date.UTC(2026, 0, 2, 3, 4, 5, 678) });
});
