import t from 'tap';
import { readFileSync } from 'node:fs';
import { policyJsonSchemas, schemaFileText } from '../../src/policy/schema.js';

// CI gate: the committed JSON Schemas must be what the zod schemas generate today.
// Fix a failure with: npx tsc -p . && node scripts/gen-policy-schema.mjs
for (const name of ['policy', 'rules'] as const) {
  t.test(`docs/${name}.schema.json is up to date`, async (t) => {
    const committed = readFileSync(new URL(`../../docs/${name}.schema.json`, import.meta.url), 'utf8');
    const fresh = schemaFileText(policyJsonSchemas()[name]);
    t.equal(committed, fresh, `docs/${name}.schema.json is stale: run npx tsc -p . && node scripts/gen-policy-schema.mjs`);
  });
}

t.test('the schema describes the language for editors', async (t) => {
  const s = policyJsonSchemas().policy as { required: string[]; additionalProperties: boolean; $defs: Record<string, { properties?: Record<string, unknown> }> };
  t.same(s.required, ['version', 'default_action']);
  t.equal(s.additionalProperties, false, 'unknown keys are flagged by editors too');
  t.ok(s.$defs.Rule?.properties?.sni, 'rules document sni');
  t.ok(s.$defs.Settings, 'settings and their defaults');
});
