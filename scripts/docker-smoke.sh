#!/usr/bin/env bash
# Builds the container image and checks that it starts healthy (host networking, NET_RAW for the return path).
# Runs only where a Docker engine answers; CI calls it and says so when there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
  echo "docker-smoke: no Docker engine here; test/docker checks the Dockerfile's inputs instead"
  exit 0
fi
tag="gwlb-inspector:ci-$$"
docker build -f docker/Dockerfile -t "$tag" .
admin=127.0.0.1:18080
cid=$(docker run -d --network host --cap-add NET_RAW -e GWLB_INSPECTOR_LISTEN=127.0.0.1 -e GWLB_INSPECTOR_PORT=16081 \
  -e GWLB_INSPECTOR_ADMIN_LISTEN="$admin" "$tag")
trap 'docker rm -f "$cid" >/dev/null; docker rmi "$tag" >/dev/null' EXIT
for _ in $(seq 1 60); do
  if curl -sf "http://$admin/healthz" >/dev/null; then echo "docker-smoke: image healthy"; exit 0; fi
  sleep 1
done
docker logs "$cid" | tail -20
echo "docker-smoke: the image did not become healthy in 60 s" >&2
exit 1
