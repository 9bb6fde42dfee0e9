#!/usr/bin/env bash
# Builds the container image and checks it where a Docker engine answers (CI calls it and says so when there is
# none; test/docker checks the Dockerfile's inputs and the capability model without one): it runs as a non-root user
# with CAP_NET_RAW only, its HEALTHCHECK turns healthy, POST /drain turns /healthz to 503 "draining" while the
# container stays healthy (so it is not replaced while its flows finish).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
  echo "docker-smoke: no Docker engine here; test/docker checks the Dockerfile's inputs instead"
  exit 0
fi
tag="gwlb-inspector:ci-$$"
docker build -f docker/Dockerfile -t "$tag" --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" .
admin=127.0.0.1:18080
stats=127.0.0.1:19090
cid=$(docker run -d --network host --cap-drop ALL --cap-add NET_RAW -e GWLB_INSPECTOR_LISTEN=127.0.0.1 -e GWLB_INSPECTOR_PORT=16081 \
  -e GWLB_INSPECTOR_ADMIN_LISTEN="$admin" -e GWLB_INSPECTOR_STATS_LISTEN="$stats" "$tag")
trap 'docker rm -f "$cid" >/dev/null; docker rmi "$tag" >/dev/null' EXIT
fail() { docker logs "$cid" 2>&1 | tail -20; echo "docker-smoke: $*" >&2; exit 1; }

[ "$(docker exec "$cid" id -u)" != 0 ] || fail "the appliance runs as root"
health() { docker inspect -f '{{.State.Health.Status}}' "$cid"; }
for _ in $(seq 1 90); do
  [ "$(health)" = healthy ] && break
  sleep 1
done
[ "$(health)" = healthy ] || fail "the image's HEALTHCHECK did not turn healthy in 90 s (status $(health))"
echo "docker-smoke: image healthy (non-root, CAP_NET_RAW only)"

curl -sf -X POST "http://$stats/drain" >/dev/null || fail "POST /drain failed"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$admin/healthz")
[ "$code" = 503 ] || fail "/healthz answered $code after POST /drain, not 503"
docker exec "$cid" node dist/admin/healthcheck.js | grep -q '^draining' || fail "the HEALTHCHECK script does not report draining"
echo "docker-smoke: drain turns /healthz to 503 and the container stays healthy"
