#!/usr/bin/env bash
# Makes sure a supported Node.js (>= 20.17, with npm) is on PATH; prints the directory to put first on PATH.
#
# Debian 12 ships Node 18, which the appliance refuses (and under which tap fails with "crypto is not defined").
# When `node` is missing or too old, this installs Debian's nodejs/npm only as a bootstrap, fetches the pinned
# official Node build from the npm registry (the node-linux-<arch> package: bin/node plus include/node, which the
# native addon build needs) into $GWLB_NODE_PREFIX, and adds npm there. Idempotent; needs root only to install.
set -euo pipefail
NODE_PIN="${GWLB_NODE_VERSION:-20.20.2}"
NPM_PIN="${GWLB_NPM_VERSION:-11}"
MIN_MAJOR=20
MIN_MINOR=17

supported() { # $1: a node binary
  "$1" -e "const [a,b]=process.versions.node.split('.').map(Number); process.exit(a>${MIN_MAJOR}||(a===${MIN_MAJOR}&&b>=${MIN_MINOR})?0:1)" 2>/dev/null
}

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && supported "$(command -v node)"; then
  dirname "$(command -v node)"
  exit 0
fi

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "ensure-node: no Node build for $(uname -m)" >&2; exit 1 ;;
esac
prefix="${GWLB_NODE_PREFIX:-/opt/gwlb-inspector/node-v${NODE_PIN}}"
if [ ! -x "$prefix/bin/node" ] || [ ! -x "$prefix/bin/npm" ]; then
  echo "ensure-node: $(command -v node >/dev/null 2>&1 && node --version || echo 'no node') here; installing Node ${NODE_PIN} into ${prefix}" >&2
  if ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends nodejs npm >&2
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-${arch}@${NODE_PIN}" >/dev/null)
  mkdir -p "$prefix"
  tar xzf "$tmp"/node-linux-"${arch}"-*.tgz -C "$prefix" --strip-components=1
  rm -rf "$tmp"
  # The bootstrap npm runs on the new node (first on PATH) and installs the pinned npm beside it.
  PATH="$prefix/bin:$PATH" npm install --silent -g --prefix "$prefix" "npm@${NPM_PIN}" >&2
fi
supported "$prefix/bin/node" || { echo "ensure-node: $prefix/bin/node is not a supported Node" >&2; exit 1; }
echo "$prefix/bin"
