/**
 * The image cannot be built on machines without a Docker engine (CI's included), so what can be checked without
 * one is checked here: every path the Dockerfile copies from the build context exists and is not excluded by
 * .dockerignore, and the image builds with the same commands CI runs (npm ci, then npm run build).
 * .ci/run builds and smoke-tests the real image when `docker info` answers.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../helpers/appliance.js';

const dockerfile = readFileSync(join(REPO, 'docker', 'Dockerfile'), 'utf8');
// Continuation lines joined, comments dropped: one instruction per entry.
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));

t.test('every path COPY takes from the build context exists and is not dockerignored', async (t) => {
  const copies = instructions.filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l));
  t.ok(copies.length >= 3, 'the Dockerfile copies the sources');
  for (const line of copies) {
    const args = line.split(/\s+/).slice(1).filter((a) => !a.startsWith('--'));
    const sources = args.slice(0, -1);
    t.ok(sources.length > 0, line);
    for (const src of sources) {
      t.ok(existsSync(join(REPO, src)), `${src} exists (${line})`);
      t.notOk(ignored.some((pat) => src === pat || src.startsWith(pat + '/')), `${src} is not excluded by .dockerignore`);
    }
  }
});

t.test('the image builds with the commands CI runs, against the lockfile', async (t) => {
  const runs = instructions.filter((l) => /^RUN\s/i.test(l)).join('\n');
  t.match(runs, /\bnpm ci\b/, 'npm ci: the lockfile decides every version');
  t.match(runs, /\bnpm run build\b/, 'npm run build: the same build script CI uses');
  const ci = readFileSync(join(REPO, '.ci', 'run'), 'utf8');
  t.match(ci, /\bnpm ci\b/);
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(pkg.scripts['test'], /^npm run build && /, 'npm test builds with npm run build');
  t.match(instructions.find((l) => /^FROM\s/i.test(l)), /^FROM node:\d+/, 'the image names its Node major (CI tests it: scripts/test-image-node.sh)');
});
