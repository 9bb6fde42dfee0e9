#!/bin/bash
# EC2 user data of a gwlb-inspector appliance instance (Amazon Linux 2023), used by docker/cloudformation.yaml's
# launch template, which fills in the four quoted values below (CloudFormation Fn::Sub). To use it elsewhere, replace
# them by hand.
# Shell variables are written $NAME, without braces, so that Fn::Sub leaves them alone.
# What it sets up is explained in docs/operations.md ("Instance settings", "Tuning").
set -euo pipefail

IMAGE='${ContainerImage}'
LOG_GROUP='${LogGroup}'
REGION='${AWS::Region}'
GWLB_SOURCES='${GwlbSourceCidrs}'

# Kernel settings: socket buffers the appliance may ask for without CAP_NET_ADMIN (SO_RCVBUF is capped at
# rmem_max), loose reverse-path filtering (strict works with one interface; loose keeps working when a second one,
# e.g. for management, is attached).
cat > /etc/sysctl.d/90-gwlb-inspector.conf <<'SYSCTL'
net.core.rmem_max = 33554432
net.core.wmem_max = 33554432
net.core.netdev_max_backlog = 30000
net.ipv4.conf.all.rp_filter = 2
net.ipv4.conf.default.rp_filter = 2
SYSCTL
sysctl --system

# GWLB sends GENEVE datagrams of up to 8568 bytes (8500-byte inner packets + 68 bytes of headers) and never
# fragments them: the interface MTU must stay at EC2's jumbo 9001.
dev=$(ip -o route show default | awk '{print $5; exit}')
mtu=$(cat "/sys/class/net/$dev/mtu")
if [ "$mtu" -lt 8568 ]; then
  ip link set dev "$dev" mtu 9001
fi

dnf install -y docker
systemctl enable --now docker

# Images in the account's ECR need a login (the instance role may read that repository only).
case "$IMAGE" in
  *.dkr.ecr.*.amazonaws.com/*)
    registry=$(echo "$IMAGE" | cut -d/ -f1)
    aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$registry"
    ;;
esac
docker pull "$IMAGE"

# One appliance per instance, on the host network (GWLB sends to the instance address; the raw return path
# answers from it), with CAP_NET_RAW only. The verdict log goes to CloudWatch Logs directly (the instance role may
# write to that one log group); the appliance's own log lines go to the journal.
docker run -d --name gwlb-inspector --restart unless-stopped \
  --network host --cap-drop ALL --cap-add NET_RAW --read-only \
  --ulimit nofile=65536:65536 --stop-timeout 20 --log-driver journald \
  -e GWLB_INSPECTOR_GWLB_SOURCES="$GWLB_SOURCES" \
  -e GWLB_INSPECTOR_CLOUDWATCH_LOG_GROUP="$LOG_GROUP" \
  -e AWS_REGION="$REGION" \
  "$IMAGE"
