#!/usr/bin/env node
/**
 * Writes docs/policy.schema.json and docs/rules.schema.json (JSON Schema, draft 2020-12) from the zod schemas in
 * src/policy/schema.ts, via the compiled dist/. Editors use them through the `# yaml-language-server: $schema=`
 * line at the top of policy files. test/policy/json-schema.test.ts fails when the committed files are stale.
 *
 *   npx tsc -p . && node scripts/gen-policy-schema.mjs
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { policyJsonSchemas, schemaFileText } from '../dist/policy/schema.js';

const docs = new URL('../docs/', import.meta.url);
const schemas = policyJsonSchemas();
for (const [name, schema] of Object.entries({ policy: schemas.policy, rules: schemas.rules })) {
  const file = fileURLToPath(new URL(`${name}.schema.json`, docs));
  writeFileSync(file, schemaFileText(schema));
  process.stdout.write(`wrote ${file}\n`);
}
