// Regenerates docs/configuration.md from the settings schema (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { configurationMarkdown } from '../dist/config/doc.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), configurationMarkdown());
