/*
 * loadgen — plays GWLB against an appliance (or the reflector) on loopback.
 *
 *   loadgen --target ADDR:PORT --bind ADDR [--flows N] [--size BYTES] [--rate PPS] [--duration S]
 *           [--batch N] [--sockets N] [--proto udp|tcp] [--new-flows [--first-flow N]]
 *
 * Each datagram is what GWLB sends (docs/architecture.md §2, RFC 8926 §3.4-3.5): GENEVE ver 0, Opt Len 8 (32 bytes of
 * options), O=0 C=0, Protocol Type 0x0800, VNI 0, then the three AWS options of class 0x0108 — type 1
 * (8-byte endpoint id), type 2 (8-byte attachment id, zero), type 3 (4-byte flow cookie, distinct per flow) —
 * then a valid inner IPv4+UDP packet of --size bytes (with --proto tcp: IPv4+TCP, flags ACK). Each flow is a
 * distinct inner 5-tuple 10.x.y.z -> 10.a.b.c and always leaves from the same outer source socket, as a GWLB
 * flow does. With --new-flows every datagram opens a flow never seen before (TCP: a SYN; --flows is ignored):
 * a connection-rate load, where each packet costs the appliance a flow creation and a rule evaluation. Flow k
 * of a run is flow number --first-flow + k, so consecutive runs against one appliance can keep opening new flows.
 *
 * Sending uses sendmmsg with two iovecs per datagram (a precomputed 68-byte per-flow header and one shared
 * payload), so the generator costs little. Returns arrive on --bind ADDR:6081 and are counted by a
 * separate thread (recvmmsg) so sending never waits on receiving. Runs --duration seconds, waits DRAIN_MS
 * for stragglers, prints one JSON line and exits. Only loopback addresses are accepted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define GENEVE_PORT 6081                    /* RFC 8926 §3.3; GWLB sends to and receives on it */
#define GENEVE_BASE_LEN 8                   /* RFC 8926 §3.4 */
#define GENEVE_OPTS_LEN 32                  /* three AWS options: 4+8, 4+8, 4+4 */
#define GENEVE_HDR_LEN (GENEVE_BASE_LEN + GENEVE_OPTS_LEN)
#define GENEVE_PROTO_IPV4 0x0800
#define AWS_OPT_CLASS 0x0108
#define AWS_OPT_ENDPOINT_ID 1
#define AWS_OPT_ATTACHMENT_ID 2
#define AWS_OPT_FLOW_COOKIE 3
#define ENDPOINT_ID 0x0123456789abcdefULL
#define IPV4_HDR_LEN 20
#define UDP_HDR_LEN 8
#define TCP_HDR_LEN 20
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
#define INNER_MAX 8500                      /* GWLB's inner MTU (docs/architecture.md §2) */
#define MAX_FLOWS (1 << 20)
#define MAX_SOCKETS 64
#define MAX_BATCH 1024
#define RX_SLOT 9216
#define SOCK_BUF_BYTES (8 * 1024 * 1024)
#define RX_WAKE_US 100000
#define DRAIN_MS 300
#define MAX_DURATION_S 3600

static int opt_size = 64, opt_batch = 64, opt_sockets = 8, opt_tcp = 0, opt_new_flows = 0;
/* Inner L3+L4 header bytes (28 UDP, 40 TCP) and the per-flow precomputed header (GENEVE + inner headers). */
static unsigned inner_min = IPV4_HDR_LEN + UDP_HDR_LEN, flow_hdr_len = GENEVE_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN;
static unsigned opt_flows = 4096, opt_first_flow = 0;
static double opt_rate = 0, opt_duration = 5;
static struct sockaddr_in target, bind_addr;

static int rx_stop;                         /* set by main, read by the receiver (__atomic) */
static unsigned long long rx_count, rx_bad;
static int rx_fd;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

/* RFC 1071 sum of big-endian 16-bit words; an odd last byte is padded with zero on the right. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum) {
  for (; len >= 2; p += 2, len -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
  if (len) sum += (uint32_t)p[0] << 8;
  return sum;
}
static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* GENEVE option header (RFC 8926 §3.5): class, type, 3 reserved bits + 5-bit length in 4-byte words. */
static uint8_t *put_option(uint8_t *p, uint8_t type, uint8_t words) {
  put16(p, AWS_OPT_CLASS);
  p[2] = type;
  p[3] = words & 0x1f;
  return p + 4;
}

/* The bytes that differ per flow: GENEVE header with options, inner IPv4 header, inner UDP or TCP header. */
static void build_flow(uint8_t *h, uint32_t f, uint32_t payload_sum) {
  memset(h, 0, flow_hdr_len);
  h[0] = GENEVE_OPTS_LEN / 4;               /* Ver 0 (top 2 bits), Opt Len in 4-byte words */
  h[1] = 0;                                 /* O = 0, C = 0 */
  put16(h + 2, GENEVE_PROTO_IPV4);          /* VNI 0 and reserved stay zero */
  uint8_t *o = put_option(h + GENEVE_BASE_LEN, AWS_OPT_ENDPOINT_ID, 2);
  put32(o, (uint32_t)(ENDPOINT_ID >> 32)), put32(o + 4, (uint32_t)ENDPOINT_ID);
  o = put_option(o + 8, AWS_OPT_ATTACHMENT_ID, 2);
  o = put_option(o + 8, AWS_OPT_FLOW_COOKIE, 1);
  put32(o, (f + 1) * 2654435761u);          /* distinct per flow (odd multiplier: a bijection) */

  uint8_t *ip = h + GENEVE_HDR_LEN, *l4 = ip + IPV4_HDR_LEN;
  uint32_t src = 0x0a000000u | (f & 0x3fffffu);                    /* 10.0.0.0/10 */
  uint32_t dst = 0x0a400000u | ((f * 40503u + 7u) & 0x3fffffu);    /* 10.64.0.0/10 */
  uint16_t sport = (uint16_t)(1024 + (f ^ (f >> 22)) % 60000), dport = (uint16_t)(1 + f % 1000);
  uint16_t l4len = (uint16_t)(opt_size - IPV4_HDR_LEN);
  uint8_t proto = opt_tcp ? 6 : 17;
  ip[0] = 0x45, ip[8] = 64, ip[9] = proto;  /* RFC 791 §3.1: v4 IHL 5, TTL 64, protocol */
  put16(ip + 2, (uint16_t)opt_size), put16(ip + 4, (uint16_t)f);
  put32(ip + 12, src), put32(ip + 16, dst);
  put16(ip + 10, fold(sum16(ip, IPV4_HDR_LEN, 0)));
  put16(l4, sport), put16(l4 + 2, dport);
  if (opt_tcp) {
    /* RFC 9293 §3.1: seq, ack, data offset 5 words, flags, window; checksum over the pseudo header too. */
    put32(l4 + 4, f * 2246822519u);
    int syn = opt_new_flows;
    if (!syn) put32(l4 + 8, 1);
    l4[12] = 5 << 4, l4[13] = syn ? TCP_FLAG_SYN : TCP_FLAG_ACK;
    put16(l4 + 14, 65535);
    uint32_t sum = sum16(ip + 12, 8, 0) + 6 + l4len + sum16(l4, TCP_HDR_LEN, payload_sum);
    put16(l4 + 16, fold(sum));
  } else {
    put16(l4 + 4, l4len);
    /* RFC 768: pseudo header + UDP header + data; the data sum is shared by all flows. */
    uint32_t sum = sum16(ip + 12, 8, 0) + 17 + l4len + sum16(l4, UDP_HDR_LEN, payload_sum);
    uint16_t ck = fold(sum);
    put16(l4 + 6, ck ? ck : 0xffff);
  }
}

static void *receiver(void *arg) {
  (void)arg;
  static char bufs[MAX_BATCH][RX_SLOT];
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  const unsigned expect = GENEVE_HDR_LEN + (unsigned)opt_size;
  while (!__atomic_load_n(&rx_stop, __ATOMIC_RELAXED)) {
    for (int i = 0; i < MAX_BATCH; i++) {
      iov[i] = (struct iovec){ bufs[i], RX_SLOT };
      msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
    }
    int n = recvmmsg(rx_fd, msgs, MAX_BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      die("recvmmsg");
    }
    rx_count += (unsigned)n;
    for (int i = 0; i < n; i++)
      if (msgs[i].msg_len != expect || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) rx_bad++;
  }
  return NULL;
}

static void set_bufs(int fd) {
  int v = SOCK_BUF_BYTES;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v)) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v)) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
}

static int udp_bound(uint16_t port) {
  struct sockaddr_in sa = bind_addr;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  set_bufs(fd);
  sa.sin_port = htons(port);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa)) die("bind");
  return fd;
}

static int parse_loopback(const char *s, struct sockaddr_in *sa, int want_port) {
  char host[64];
  const char *colon = strrchr(s, ':');
  size_t hl = want_port ? (colon ? (size_t)(colon - s) : sizeof host) : strlen(s);
  if (hl >= sizeof host) return -1;
  memcpy(host, s, hl);
  host[hl] = 0;
  *sa = (struct sockaddr_in){ .sin_family = AF_INET };
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) return -1;
  if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) return -1;   /* traffic stays on loopback */
  if (want_port) {
    int port = atoi(colon + 1);
    if (port < 1 || port > 65535) return -1;
    sa->sin_port = htons((uint16_t)port);
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: loadgen --target 127.x.x.x:PORT --bind 127.x.x.x [--flows N] [--size 28..%d (tcp: 40..)]\n"
                  "               [--rate PPS (0 = max)] [--duration S] [--batch 1..%d] [--sockets 1..%d]\n"
                  "               [--proto udp|tcp] [--new-flows [--first-flow N]]\n",
          INNER_MAX, MAX_BATCH, MAX_SOCKETS);
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
    { "target", required_argument, 0, 't' }, { "bind", required_argument, 0, 'b' },
    { "flows", required_argument, 0, 'f' }, { "size", required_argument, 0, 's' },
    { "rate", required_argument, 0, 'r' }, { "duration", required_argument, 0, 'd' },
    { "batch", required_argument, 0, 'B' }, { "sockets", required_argument, 0, 'S' },
    { "proto", required_argument, 0, 'p' }, { "new-flows", no_argument, 0, 'n' },
    { "first-flow", required_argument, 0, 'F' }, { 0, 0, 0, 0 },
  };
  int have_target = 0, have_bind = 0, c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 't': if (parse_loopback(optarg, &target, 1)) usage(); have_target = 1; break;
      case 'b': if (parse_loopback(optarg, &bind_addr, 0)) usage(); have_bind = 1; break;
      case 'f': opt_flows = (unsigned)strtoul(optarg, NULL, 10); break;
      case 's': opt_size = atoi(optarg); break;
      case 'r': opt_rate = atof(optarg); break;
      case 'd': opt_duration = atof(optarg); break;
      case 'B': opt_batch = atoi(optarg); break;
      case 'S': opt_sockets = atoi(optarg); break;
      case 'p':
        if (!strcmp(optarg, "tcp")) opt_tcp = 1;
        else if (strcmp(optarg, "udp")) usage();
        break;
      case 'n': opt_new_flows = 1; break;
      case 'F': opt_first_flow = (unsigned)strtoul(optarg, NULL, 10); break;
      default: usage();
    }
  }
  if (opt_tcp) inner_min = IPV4_HDR_LEN + TCP_HDR_LEN, flow_hdr_len = GENEVE_HDR_LEN + inner_min;
  if (!have_target || !have_bind || opt_flows < 1 || opt_flows > MAX_FLOWS || opt_size < (int)inner_min ||
      opt_size > INNER_MAX || opt_rate < 0 || !(opt_duration > 0 && opt_duration <= MAX_DURATION_S) ||
      opt_batch < 1 || opt_batch > MAX_BATCH || opt_sockets < 1 || opt_sockets > MAX_SOCKETS) usage();
  if ((unsigned)opt_sockets > opt_flows) opt_sockets = (int)opt_flows;

  /* Shared inner payload and the per-flow headers, built once. */
  size_t payload_len = (size_t)opt_size - inner_min;
  if (opt_new_flows) opt_flows = MAX_BATCH;  /* the header table becomes one batch of fresh flows, rebuilt each batch */
  uint8_t *payload = malloc(payload_len + 1), *hdrs = malloc((size_t)opt_flows * flow_hdr_len);
  if (!payload || !hdrs) die("malloc");
  for (size_t i = 0; i < payload_len; i++) payload[i] = (uint8_t)(i * 31 + 7);
  uint32_t payload_sum = sum16(payload, payload_len, 0);
  for (unsigned f = 0; f < opt_flows; f++) build_flow(hdrs + (size_t)f * flow_hdr_len, f, payload_sum);
  uint32_t next_flow = opt_first_flow;      /* --new-flows: index of the next never-seen flow */

  rx_fd = udp_bound(GENEVE_PORT);
  struct timeval tv = { .tv_sec = 0, .tv_usec = RX_WAKE_US };
  setsockopt(rx_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int socks[MAX_SOCKETS];
  unsigned cursor[MAX_SOCKETS];
  for (int s = 0; s < opt_sockets; s++) socks[s] = udp_bound(0), cursor[s] = (unsigned)s;
  pthread_t rx_thread;
  if (pthread_create(&rx_thread, NULL, receiver, NULL)) die("pthread_create");

  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH][2];
  unsigned long long sent = 0;
  double t0 = now_s(), end = t0 + opt_duration, t = t0;
  for (int s = 0; t < end; s = (s + 1) % opt_sockets) {
    /* Socket s carries flows s, s + sockets, ...: a flow keeps one outer source port, like GWLB's. */
    for (int j = 0; j < opt_batch; j++) {
      unsigned f = cursor[s];
      cursor[s] = f + (unsigned)opt_sockets < opt_flows ? f + (unsigned)opt_sockets : (unsigned)s;
      if (opt_new_flows) f = (unsigned)j, build_flow(hdrs + (size_t)j * flow_hdr_len, next_flow++, payload_sum);
      iov[j][0] = (struct iovec){ hdrs + (size_t)f * flow_hdr_len, flow_hdr_len };
      iov[j][1] = (struct iovec){ payload, payload_len };
      msgs[j].msg_hdr = (struct msghdr){ .msg_name = &target, .msg_namelen = sizeof target,
                                         .msg_iov = iov[j], .msg_iovlen = payload_len ? 2 : 1 };
    }
    for (int k = 0; k < opt_batch;) {
      int r = sendmmsg(socks[s], msgs + k, (unsigned)(opt_batch - k), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == ENOBUFS || errno == EAGAIN)) break;   /* drop the rest, as a full NIC queue */
      if (r < 0) die("sendmmsg");
      k += r;
      sent += (unsigned)r;
    }
    t = now_s();
    if (opt_rate > 0) {                     /* pace: never ahead of sent / rate */
      double due = t0 + sent / opt_rate;
      if (due > end) due = end;             /* never overrun --duration, however low the rate */
      if (due > t) {
        struct timespec ts = { .tv_sec = (time_t)(due - t), .tv_nsec = (long)((due - t - (time_t)(due - t)) * 1e9) };
        nanosleep(&ts, NULL);
        t = now_s();
      }
    }
  }
  double seconds = t - t0;
  usleep(DRAIN_MS * 1000);
  __atomic_store_n(&rx_stop, 1, __ATOMIC_RELAXED);
  pthread_join(rx_thread, NULL);

  unsigned long long good = rx_count - rx_bad;
  printf("{\"sent\":%llu,\"received\":%llu,\"bad\":%llu,\"seconds\":%.3f,\"sent_pps\":%.0f,\"recv_pps\":%.0f,"
         "\"loss_ratio\":%.6f,\"flows\":%u,\"size\":%d,\"batch\":%d,\"sockets\":%d,\"proto\":\"%s\",\"new_flows\":%s}\n",
         sent, rx_count, rx_bad, seconds, sent / seconds, good / seconds,
         sent ? 1.0 - (double)good / (double)sent : 0.0, opt_new_flows ? next_flow - opt_first_flow : opt_flows, opt_size, opt_batch,
         opt_sockets, opt_tcp ? "tcp" : "udp", opt_new_flows ? "true" : "false");
  return 0;
}
