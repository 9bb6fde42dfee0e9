#!/usr/bin/env bash
# Runs the unit and data-plane tests under the Node major the container image uses (docker/Dockerfile's
# `FROM node:NN...`), fetched from the npm registry (node-linux-<arch>), so both the dev/CI Node and the image's
# Node are tested. Our addon is N-API (ABI-stable), so the build made for the CI Node loads in both; re2 is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
major="$(sed -nE 's/^FROM node:([0-9]+).*/\1/p' docker/Dockerfile | head -n 1)"
[ -n "$major" ] || { echo "test-image-node: no 'FROM node:NN' in docker/Dockerfile" >&2; exit 1; }
if [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  echo "test-image-node: CI already runs Node $major"
  exit 0
fi
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) echo "test-image-node: no Node build for $(uname -m)" >&2; exit 1 ;; esac
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
(cd "$dir" && npm pack --silent "node-linux-${arch}@${major}" >/dev/null && tar xzf node-linux-*.tgz --strip-components=1)
# re2 (the DLP stage's regular expressions) is a NAN addon, tied to one Node ABI, unlike our N-API addon: build it
# against the image Node's headers (shipped in the package, offline) for this run, and put the CI Node's back after.
re2bin="node_modules/re2/build/Release/re2.node"
if [ -f "$re2bin" ]; then
  cp "$re2bin" "$dir/re2.node.ci"
  trap 'cp "$dir/re2.node.ci" "$re2bin"; rm -rf "$dir"' EXIT
  echo "test-image-node: building re2 for Node $major (about 2 minutes on 2 cores)"
  (cd node_modules/re2 && PATH="$dir/bin:$PATH" "$dir/bin/node" ../node-gyp/bin/node-gyp.js rebuild -j max --silent --nodedir="$dir")
fi
echo "test-image-node: unit and data-plane tests under Node $("$dir/bin/node" --version) (the image's Node)"
log="$dir/tap.log"
# Everything but the lab and its e2e tests (namespaces, minutes of real traffic: once, under the CI Node, is enough).
mapfile -t dirs < <(find test -mindepth 1 -maxdepth 1 -type d ! -name e2e ! -name lab ! -name helpers ! -name fixtures | sort)
PATH="$dir/bin:$PATH" node node_modules/.bin/tap --disable-coverage "${dirs[@]}" 2>&1 | tee "$log" | grep -E '^(not )?ok |^# \{' || true
summary="$(grep -E '^# \{ total: [0-9]+' "$log" | tail -n 1)"
echo "$summary" | grep -qE 'fail: [1-9]|skip: [1-9]|todo: [1-9]' && { grep -E -A25 '^ +not ok' "$log" | head -120; exit 1; }
[ -n "$summary" ] || { tail -40 "$log"; exit 1; }
echo "test-image-node: Node $major: ${summary#\# }"
