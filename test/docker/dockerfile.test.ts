/**
 * The image cannot be built on machines without a Docker engine (CI's included), so what can be checked without
 * one is checked here: every path the Dockerfile copies from the build context exists and is not excluded by
 * .dockerignore, every path copied from the build stage is one the build produces, the image builds with the one
 * script CI's build uses (scripts/build-app.sh: npm ci from the lockfile, then tsc), the runtime stage runs as a
 * non-root user with CAP_NET_RAW only, has a HEALTHCHECK through a script that exists, and carries OCI labels.
 * .ci/run builds and smoke-tests the real image when `docker info` answers (scripts/docker-smoke.sh);
 * test/docker/capabilities.test.ts runs the appliance the way the image does (non-root, file capability).
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../helpers/appliance.js';

const dockerfile = readFileSync(join(REPO, 'docker', 'Dockerfile'), 'utf8');
// Continuation lines joined, comments dropped: one instruction per entry.
const instructions = dockerfile
  .split('\n')
  .filter((l) => !l.trim().startsWith('#'))
  .join('\n')
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '');
const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));

/** Instructions per stage, in order. */
const stages: string[][] = [];
for (const l of instructions) {
  if (/^FROM\s/i.test(l)) stages.push([]);
  stages[stages.length - 1]?.push(l);
}
const buildStage = stages[0] ?? [];
const runtime = stages[stages.length - 1] ?? [];
const buildApp = readFileSync(join(REPO, 'scripts', 'build-app.sh'), 'utf8');
const buildAppCommands = buildApp.split('\n').filter((l) => !l.trim().startsWith('#'));

function args(line: string): string[] {
  return line.split(/\s+/).slice(1).filter((a) => !a.startsWith('--'));
}

t.test('every path COPY takes from the build context exists and is not dockerignored', async (t) => {
  const copies = instructions.filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l));
  t.ok(copies.length >= 5, 'the Dockerfile copies the sources');
  for (const line of copies) {
    const sources = args(line).slice(0, -1);
    t.ok(sources.length > 0, line);
    for (const src of sources) {
      t.ok(existsSync(join(REPO, src)), `${src} exists (${line})`);
      t.notOk(ignored.some((pat) => src === pat || src.startsWith(pat + '/')), `${src} is not excluded by .dockerignore`);
    }
  }
});

t.test('build and runtime stages on the same slim Node image: the toolchain only in the build stage', async (t) => {
  t.equal(stages.length, 3, 'build, lab (compose profile only) and runtime');
  const from = stages.map((s) => s[0] ?? '');
  t.match(from[0], /^FROM node:\d+-slim AS build$/i);
  t.match(from[1], /^FROM build AS lab$/i, 'the lab stage reuses the build');
  t.match(from[2], /^FROM node:\d+-slim$/i, 'the runtime stage is last: the default target');
  t.equal(/node:(\d+)/.exec(from[0] as string)?.[1], /node:(\d+)/.exec(from[2] as string)?.[1], 'the addons are compiled for the Node that runs them');
  t.match(buildStage.filter((l) => /^RUN\s/i.test(l)).join('\n'), /apt-get install[^\n]*\bmake\b[^\n]*\bg\+\+[^\n]*\bpython3\b/, 'node-gyp toolchain in the build stage');
  t.notMatch(runtime.join('\n'), /\b(g\+\+|gcc|make|python3|build-essential)\b/, 'no compiler in the runtime image');
});

t.test('the image builds with the script CI builds with, once, against the lockfile', async (t) => {
  const runs = buildStage.filter((l) => /^RUN\s/i.test(l));
  const build = runs.filter((l) => /scripts\/build-app\.sh/.test(l));
  t.equal(build.length, 1, 'one RUN of scripts/build-app.sh');
  t.notMatch(runs.join('\n'), /\bnpm\s+(ci|install|run|rebuild|prune)\b|node-gyp/, 'no npm or node-gyp command of its own: everything is in the shared script');
  // What the build script runs.
  const npmLines = buildAppCommands.filter((l) => /^\s*npm\s/.test(l)).map((l) => l.trim());
  t.same(npmLines.slice(0, 2), ['npm ci --no-audit --no-fund', 'npm run build:ts'], 'npm ci (the lockfile decides; its install scripts compile the addons), then only tsc');
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(pkg.scripts['install'], /build-native\.mjs/, 'npm ci compiles our addon through the install script');
  t.match(pkg.scripts['build:ts'], /^tsc /, 'build:ts compiles TypeScript only: the addon is compiled once');
  // CI builds the same way: either it calls the script, or it runs the same npm ci with the same build environment.
  const ci = readFileSync(join(REPO, '.ci', 'run'), 'utf8').split('\n').filter((l) => !l.trim().startsWith('#'));
  if (ci.some((l) => /scripts\/build-app\.sh/.test(l))) {
    t.pass('.ci/run calls scripts/build-app.sh');
  } else {
    const ciNpmCi = ci.find((l) => /^\s*npm ci\b/.test(l))?.trim();
    t.equal(ciNpmCi, npmLines[0], '.ci/run runs the same npm ci');
    const ciEnv = ci.slice(0, ci.findIndex((l) => /^\s*npm ci\b/.test(l))).flatMap((l) => [...l.matchAll(/^\s*export\s+([A-Za-z_]+)/g)].map((m) => m[1] as string));
    for (const name of ciEnv.filter((n) => n !== 'HOME' && n !== 'PATH' && n !== 'DEBIAN_FRONTEND')) {
      t.match(buildApp, new RegExp(`export ${name}=`), `build-app.sh sets ${name} as .ci/run does before npm ci`);
    }
  }
});

t.test('every path copied from the build stage is one the build produces and checks', async (t) => {
  const fromBuild = runtime.filter((l) => /^COPY\s+--from=build\s/i.test(l));
  t.ok(fromBuild.length >= 3);
  for (const line of fromBuild) {
    const src = (args(line)[0] ?? '').replace(/^\/app\//, '');
    if (src === 'node_modules') continue; // npm ci's output
    t.match(buildApp, new RegExp(`\\[ -f ${src.replace(/[.]/g, '\\.')}`), `${src} is checked by build-app.sh`);
  }
  t.match(buildApp, /\[ -f dist\/cli\/main\.js \]/);
});

t.test('the runtime stage: non-root, CAP_NET_RAW only, HEALTHCHECK, OCI labels, the CLI as entry point', async (t) => {
  const users = runtime.filter((l) => /^USER\s/i.test(l));
  t.equal(users.length, 1);
  const user = (users[0] ?? '').split(/\s+/)[1] ?? '';
  t.notOk(['root', '0', '0:0'].includes(user), `runs as ${user}, not root`);
  const userAt = runtime.indexOf(users[0] as string);
  t.notOk(runtime.slice(userAt).some((l) => /^(RUN|COPY|ADD)\s/i.test(l)), 'USER comes after every RUN and COPY (files stay root-owned, read-only)');

  const setcap = runtime.filter((l) => /\bsetcap\b/.test(l)).join('\n');
  t.match(setcap, /setcap cap_net_raw=ep /, 'CAP_NET_RAW as a file capability of node');
  t.same([...setcap.matchAll(/\bcap_[a-z_]+/g)].map((m) => m[0]).filter((c) => c !== 'cap_net_raw'), [], 'no other capability');

  const health = runtime.find((l) => /^HEALTHCHECK\s/i.test(l)) ?? '';
  t.match(health, /CMD \["node", "dist\/admin\/healthcheck\.js"\]/);
  t.ok(existsSync(join(REPO, 'src', 'admin', 'healthcheck.ts')), 'the healthcheck script is built from src/admin/healthcheck.ts');
  const timeout = Number(/--timeout=(\d+)s/.exec(health)?.[1]);
  const { HEALTHCHECK_TIMEOUT_MS } = await import('../../src/admin/healthcheck.js');
  t.ok(HEALTHCHECK_TIMEOUT_MS < timeout * 1000, 'the script gives up before Docker does');

  const labels = runtime.filter((l) => /^LABEL\s/i.test(l)).join(' ');
  for (const k of ['title', 'description', 'licenses', 'version', 'revision']) t.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${k}=`), `label ${k}`);
  t.match(runtime.find((l) => /^ENTRYPOINT\s/i.test(l)), /\["node", "dist\/cli\/main\.js"\]/);
  t.ok(existsSync(join(REPO, 'src', 'cli', 'main.ts')));
  t.match(instructions.find((l) => /^FROM\s/i.test(l)), /^FROM node:\d+/, 'the image names its Node major (CI tests it: scripts/test-image-node.sh)');
});
