/*
 * reflector — the C ceiling for the data plane (docs/architecture.md §3 "Why a native addon"; docs/benchmarks.md).
 *
 *   reflector ADDR PORT [BATCH]
 *
 * A minimal recvmmsg/sendmmsg loop on one UDP socket bound to ADDR:PORT. Every datagram goes back,
 * unchanged, to the sender's address at destination port 6081 (where the load generator listens for
 * returns, as GWLB does). No parsing: this is what "free" costs. Silent in the loop; on SIGTERM/SIGINT
 * prints {"received":N,"sent":N} and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define GENEVE_PORT 6081          /* RFC 8926 §3.3 */
#define SLOT_BYTES 9216           /* >= 8568: GWLB's 8500-byte inner MTU + 68 bytes overhead */
#define DEFAULT_BATCH 64
#define MAX_BATCH 1024
#define SOCK_BUF_BYTES (8 * 1024 * 1024)
#define WAKE_US 100000            /* recv timeout so a signal between checks cannot leave us blocked */

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s ADDR PORT [BATCH]\n", argv[0]);
    return 2;
  }
  struct sockaddr_in local = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
  int batch = argc > 3 ? atoi(argv[3]) : DEFAULT_BATCH;
  if (inet_pton(AF_INET, argv[1], &local.sin_addr) != 1 || batch < 1 || batch > MAX_BATCH) {
    fprintf(stderr, "reflector: bad ADDR or BATCH (1..%d)\n", MAX_BATCH);
    return 2;
  }
  /* No SA_RESTART: a signal interrupts recvmmsg so we notice it at once. */
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int bufsz = SOCK_BUF_BYTES;
  struct timeval tv = { .tv_sec = 0, .tv_usec = WAKE_US };
  if (fd < 0) { perror("socket"); return 1; }
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz))
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz))
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (bind(fd, (struct sockaddr *)&local, sizeof local)) { perror("bind"); return 1; }

  static char bufs[MAX_BATCH][SLOT_BYTES];
  static struct mmsghdr msgs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  static struct sockaddr_in peers[MAX_BATCH];
  unsigned long long received = 0, sent = 0;

  while (!stop) {
    for (int i = 0; i < batch; i++) {
      iov[i] = (struct iovec){ bufs[i], SLOT_BYTES };
      msgs[i].msg_hdr = (struct msghdr){ .msg_name = &peers[i], .msg_namelen = sizeof peers[i],
                                         .msg_iov = &iov[i], .msg_iovlen = 1 };
    }
    /* MSG_WAITFORONE: block for the first datagram, then take whatever else is already queued. */
    int n = recvmmsg(fd, msgs, (unsigned)batch, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      perror("recvmmsg");
      return 1;
    }
    received += (unsigned)n;
    for (int i = 0; i < n; i++) {
      iov[i].iov_len = msgs[i].msg_len;
      peers[i].sin_port = htons(GENEVE_PORT);
    }
    for (int k = 0; k < n;) {
      int r = sendmmsg(fd, msgs + k, (unsigned)(n - k), 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;                    /* e.g. ENOBUFS: drop the rest of the batch, as a NIC would */
      }
      k += r;
      sent += (unsigned)r;
    }
  }
  printf("{\"received\":%llu,\"sent\":%llu}\n", received, sent);
  return 0;
}
