#!/usr/bin/env bash
# Builds the application from the lockfile: the one build both CI (.ci/run) and the container image
# (docker/Dockerfile, build stage) run, so the image is built the way the tested tree was.
#
#   npm ci         exactly the lockfile's versions; npm runs the install scripts, which compile the native addons
#                  once: ours (native/gwlb_net.c, via scripts/build-native.mjs) and re2's (node-gyp), both
#                  against the running Node's own headers, offline (npm_config_nodedir below; no prebuilt binary
#                  download: DOWNLOAD_FORCE_BUILD)
#   tsc            TypeScript to dist/ (npm run build:ts; the addon is not compiled a second time)
#   --prune        afterwards, remove the dev dependencies (the image keeps only what runs)
set -euo pipefail
cd "$(dirname "$0")/.."

prune=0
for arg in "$@"; do
  case "$arg" in
    --prune) prune=1 ;;
    *) echo "build-app: unknown option $arg (only --prune)" >&2; exit 2 ;;
  esac
done

node="$(command -v node)" || { echo "build-app: no node on PATH" >&2; exit 1; }
prefix="$(cd "$(dirname "$(readlink -f "$node")")/.." && pwd)"
[ -f "$prefix/include/node/node_api.h" ] || { echo "build-app: no Node headers in $prefix/include/node (a Node distribution that ships them is needed)" >&2; exit 1; }
export npm_config_nodedir="$prefix"
export DOWNLOAD_FORCE_BUILD=1

echo "build-app: node $(node --version), npm $(npm --version), headers $prefix/include/node"
npm ci --no-audit --no-fund
npm run build:ts
if [ "$prune" = 1 ]; then
  npm prune --omit=dev --no-audit --no-fund
fi
[ -f build/Release/gwlb_net.node ] || { echo "build-app: build/Release/gwlb_net.node was not built" >&2; exit 1; }
[ -f dist/cli/main.js ] || { echo "build-app: dist/cli/main.js was not built" >&2; exit 1; }
echo "build-app: done"
