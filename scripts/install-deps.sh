#!/usr/bin/env bash
# Debian packages the test suite and the lab use. Idempotent; needs root.
#   iproute2            ip netns / veth / policy routing for the lab
#   curl iperf3 ncat    real clients and servers in the lab's namespaces
#   iputils-ping        ICMP through the lab
#   procps              ps and kill for inspecting lab processes by hand
#   make g++ python3    the native addon (node-gyp) and the C bench tools
#   tshark              independent dissection of our GENEVE fixtures in the codec tests (text2pcap comes with it)
#   openssl             TLS clients and servers (SNI rules) in the firewall e2e tests
#   clamav-daemon clamdscan  the real clamd the antivirus tests and bench start in the foreground with a temp config
#                       (rules/clamav as the only database); the package's own clamd/freshclam services are not used
set -euo pipefail
PKGS=(iproute2 curl iperf3 ncat iputils-ping make g++ python3 procps tshark openssl clamav-daemon clamdscan)
# util-linux (setpriv) and libcap2-bin (setcap, getcap): the appliance run as an unprivileged user with only
# CAP_NET_RAW, as a file or an ambient capability, the way the image and the systemd unit run it (test/docker).
PKGS+=(util-linux libcap2-bin)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# When this script installed clamav-daemon, keep the package's own services off: the tests start their own clamd,
# and clamav-freshclam would download the official databases from the internet (the suite talks to loopback only).
if [[ " ${missing[*]} " == *" clamav-daemon "* ]] && [ -d /run/systemd/system ]; then
  systemctl disable --now clamav-freshclam.service clamav-daemon.service clamav-daemon.socket || true
fi
