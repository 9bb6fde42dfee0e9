#!/usr/bin/env node
/**
 * Writes docs/log.schema.json (JSON Schema, draft 2020-12, of one verdict log line) from the zod schema in
 * src/log/schema.ts, via the compiled dist/. test/log/schema.test.ts fails when the committed file is stale.
 *
 *   npx tsc -p . && node scripts/gen-log-schema.mjs
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { logSchemaFileText } from '../dist/log/schema.js';

const file = fileURLToPath(new URL('../docs/log.schema.json', import.meta.url));
writeFileSync(file, logSchemaFileText());
process.stdout.write(`wrote ${file}\n`);
