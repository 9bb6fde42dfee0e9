/*
 * gwlb_net — the small N-API addon behind src/dataplane/native.ts.
 *
 * It gives the data plane what Node's dgram cannot (docs/architecture.md §2, §3):
 *  - SO_REUSEPORT UDP socket groups whose members are chosen by a classic BPF program hashing the *inner*
 *    IP addresses symmetrically, so both directions of a flow reach the same worker thread;
 *  - recvmmsg/sendmmsg batches into one preallocated Buffer of fixed slots, with lengths and addresses in
 *    typed arrays (no per-packet JS objects, no per-call malloc);
 *  - IP_PKTINFO (which local address GWLB sent to) and SO_RXQ_OVFL (kernel receive-queue drops);
 *  - a raw IPv4 socket for the return path, which must keep GWLB's UDP source port (docs/architecture.md §2);
 *  - uv_poll readiness callbacks and TUN devices for the lab.
 *
 * Addresses cross the boundary as uint32 in host order of significance (127.0.0.1 === 0x7f000001).
 * Failed syscalls throw Error("<syscall>: <strerror>") with `code` = errno name; "would block" returns 0.
 * The addon is context-aware (NAPI_MODULE_INIT, per-env scratch via instance data) so every worker_thread
 * can load it; the only process-wide C state is the per-fd SO_RXQ_OVFL table and the IPv4 ID counter.
 */
#define _GNU_SOURCE                   /* recvmmsg/sendmmsg, strerrorname_np, GNU strerror_r */
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/filter.h>
#include <linux/if_tun.h>

#define MAX_BATCH 1024            /* datagrams per recvmmsg/sendmmsg call (and per recvBatch) */
#define MAX_GROUP 256             /* sockets per reuseport group */
#define FD_TABLE_SIZE 65536       /* fds tracked for SO_RXQ_OVFL deltas; larger fds are not counted */
#define CMSG_SLOT_BYTES 64        /* CMSG_SPACE(in_pktinfo) 32 + CMSG_SPACE(uint32) 24, rounded up */
#define IPV4_HDR_LEN 20           /* RFC 791 §3.1, IHL 5: we never send options */
#define UDP_HDR_LEN 8             /* RFC 768 */
#define RAW_HEADROOM (IPV4_HDR_LEN + UDP_HDR_LEN)
#define IPV4_MAX_TOTAL_LEN 65535  /* RFC 791 §3.1 Total Length is 16 bits */
#define IPV4_VERSION_IHL 0x45     /* version 4, IHL 5 words */
#define IPV4_TTL 64
#define IPPROTO_UDP_NUM 17
#define GENEVE_BASE_LEN 8         /* RFC 8926 §3.4: fixed part of the GENEVE header */
#define GENEVE_OPT_LEN_MASK 0x3f  /* RFC 8926 §3.4: Opt Len, low 6 bits of byte 0, in 4-byte words */
#define GENEVE_PROTO_OFF 2        /* RFC 8926 §3.4: Protocol Type, bytes 2..3 */
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define IPV4_SRC_OFF 12           /* RFC 791 §3.1: source address; destination follows at 16 */
#define IPV4_DST_OFF 16
#define IPV6_ADDRS_OFF 8          /* RFC 8200 §3: source at 8..23, destination at 24..39 */
#define IPV6_ADDRS_END 40
#define BPF_M_ACC 0               /* cBPF scratch: hash of the source address */
#define BPF_M_TMP 1               /* cBPF scratch: operand of a xorshift */
#define BPF_M_STATE 2             /* cBPF scratch: running state while an IPv6 address is absorbed */
#define BPF_M_BASE 15             /* cBPF scratch: offset of the inner packet */
#define STEER_PROG_MAX 256        /* the IPv6 path absorbs 8 words; ~150 instructions in all */
#define STEER_KEY_WORDS 2         /* per-start steering key: 64 bits */

/* Per-environment scratch: one per JS thread, so batches need no malloc and workers never share it. */
typedef struct {
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in names[MAX_BATCH];
  union { struct cmsghdr align; char buf[CMSG_SLOT_BYTES]; } cmsg[MAX_BATCH];
  uint8_t skipped[MAX_BATCH];     /* send: 1 where a datagram was not sent */
} scratch_t;

/* Last cumulative SO_RXQ_OVFL value per fd. An fd belongs to one thread at a time, so no locking. */
static uint32_t ovfl_last[FD_TABLE_SIZE];
static uint32_t ipv4_id_counter;

/* ---------------------------------------------------------------- errors and arguments */

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

/* Error("<syscall>: <strerror>") with code = errno name; errno (negative) and syscall as Node's own errors. */
static napi_value errno_error(napi_env env, const char *syscall, int err) {
  char sbuf[128], msg[192], nbuf[16];
  const char *name = strerrorname_np(err);
  napi_value e;
  if (name == NULL) { snprintf(nbuf, sizeof nbuf, "E%d", err); name = nbuf; }
  snprintf(msg, sizeof msg, "%s: %s", syscall, strerror_r(err, sbuf, sizeof sbuf));
  napi_create_error(env, str(env, name), str(env, msg), &e);
  napi_set_named_property(env, e, "errno", num(env, -err));
  napi_set_named_property(env, e, "syscall", str(env, syscall));
  return e;
}

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_throw(env, errno_error(env, syscall, err));
  return NULL;
}

/* Closes a half-set-up fd and throws the errno of the call that failed (close must not clobber it). */
static napi_value close_throw(napi_env env, int fd, const char *syscall) {
  int err = errno;
  close(fd);
  return throw_errno(env, syscall, err);
}

static napi_value type_error(napi_env env, const char *what, const char *expected) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be %s", what, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value range_error(napi_env env, const char *what, const char *why) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s %s", what, why);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

/* An integer Number in [0, max]; anything else throws (TypeError for non-numbers, RangeError otherwise). */
static int get_uint(napi_env env, napi_value v, const char *name, double max, uint32_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return type_error(env, name, "a number"), -1;
  napi_get_value_double(env, v, &d);
  if (!(d >= 0 && d <= max) || d != (double)(uint64_t)d)
    return range_error(env, name, "is not an integer in range"), -1;
  *out = (uint32_t)d;
  return 0;
}

static int get_buf(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  bool ok = false;
  napi_is_buffer(env, v, &ok);
  if (!ok || napi_get_buffer_info(env, v, (void **)data, len) != napi_ok)
    return type_error(env, name, "a Buffer"), -1;
  return 0;
}

static const char *const TYPED_NAMES[] = {
  [napi_uint8_array] = "a Uint8Array", [napi_uint16_array] = "a Uint16Array",
  [napi_uint32_array] = "a Uint32Array", [napi_float64_array] = "a Float64Array",
};

/* A typed array of exactly `type` with at least `min_len` elements: the C side then never writes past it. */
static int get_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type type,
                     size_t min_len, void **data) {
  bool ok = false;
  napi_typedarray_type t;
  size_t len;
  napi_is_typedarray(env, v, &ok);
  if (!ok || napi_get_typedarray_info(env, v, &t, &len, data, NULL, NULL) != napi_ok || t != type)
    return type_error(env, name, TYPED_NAMES[type]), -1;
  if (len < min_len) return range_error(env, name, "is shorter than the count"), -1;
  return 0;
}

static int get_field(napi_env env, napi_value obj, const char *name, napi_typedarray_type type,
                     size_t min_len, void **data) {
  napi_value v;
  napi_valuetype t;
  if (napi_typeof(env, obj, &t) != napi_ok || t != napi_object) return type_error(env, "arrays", "an object"), -1;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return -1;
  return get_typed(env, v, name, type, min_len, data);
}

#define ARGS(n)                                                                              \
  size_t argc = (n);                                                                         \
  napi_value argv[(n) > 0 ? (n) : 1];                                                        \
  scratch_t *S;                                                                              \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&S) != napi_ok) return NULL;   \
  (void)S;                                                                                   \
  if (argc < (size_t)(n)) return type_error(env, "arguments", "complete (" #n " expected)")
#define UINT(i, name, max, var) uint32_t var; if (get_uint(env, argv[i], name, max, &var)) return NULL
#define FD(i, var) UINT(i, "fd", 0x7fffffff, var)

static int would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

/* ---------------------------------------------------------------- sockets */

static void track_fd(int fd) { if (fd >= 0 && fd < FD_TABLE_SIZE) ovfl_last[fd] = 0; }

/* SO_*BUFFORCE (CAP_NET_ADMIN) can exceed net.core.[rw]mem_max; without the capability use the capped one. */
static int set_bufs(int fd, uint32_t bytes, int rcv, int snd) {
  int v = (int)bytes;
  if (bytes == 0) return 0;
  if (rcv && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v)) return -1;
  if (snd && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v)) return -1;
  return 0;
}

static int local_port(int fd) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &sl)) return -1;
  return ntohs(sa.sin_port);
}

/* One non-blocking UDP socket bound to addr:port. Returns fd, or -1 after throwing. */
static int udp_socket(napi_env env, uint32_t addr, uint32_t port, uint32_t buf_bytes, int reuseport) {
  const int one = 1;
  const char *failed = NULL;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno), -1;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(addr) };
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) failed = "setsockopt(SO_REUSEPORT)";
  else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one)) failed = "setsockopt(IP_PKTINFO)";
  else if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one)) failed = "setsockopt(SO_RXQ_OVFL)";
  else if (set_bufs(fd, buf_bytes, 1, 1)) failed = "setsockopt(SO_RCVBUF)";
  else if (bind(fd, (struct sockaddr *)&sa, sizeof sa)) failed = "bind";
  if (failed) return close_throw(env, fd, failed), -1;
  track_fd(fd);
  return fd;
}

/*
 * The reuseport steering program. For SO_ATTACH_REUSEPORT_CBPF on UDP the kernel pulls the UDP header
 * before running the filter, so offset 0 is the first GENEVE byte; the return value is the socket index.
 * X = 8 + 4 * OptLen (RFC 8926 §3.4) = offset of the inner IP header. Other protocol types: socket 0.
 *
 * Keyed and symmetric. Each inner address is hashed on its own with the per-start key (k0, k1), and the two
 * address hashes are added (mod 2^32): addition is commutative, so (src, dst) and (dst, src) give the same sum
 * and both directions of a flow reach one worker whatever outer source port GWLB uses. The key keeps an
 * outsider from choosing addresses that all land on one worker (Linux seeds its own flow hashes at boot for
 * the same reason); like them it is a mitigation, not a cryptographic guarantee.
 *   absorb(x, w) = y ^ (y >> 15) where y = (x ^ w) * M1
 *   addr(a0..a3) = finish(absorb(absorb(absorb(absorb(k0, a0), a1), a2), a3))
 *   finish(x)    = y ^ (y >> 16) where y = (x ^ k1) * M2
 *   h = addr(src) + addr(dst); h ^= h >> 16; h *= M3; h ^= h >> 16; return h % count
 * An IPv4 address is its IPv4-mapped form (::ffff:a.b.c.d, RFC 4291 §2.5.5.2), so one definition serves both
 * families: the program starts IPv4 from the key-dependent constant absorb(absorb(absorb(k0, 0), 0), 0xffff)
 * and absorbs the one address word. The multiplies (odd constants) mix every bit into the low bits the modulo
 * keeps: structured address plans (10.a.b.c with related host numbers) must spread over every worker.
 * steering_index() is the same function in C, for the JS mirror; an out-of-bounds load ends the program with 0.
 * cBPF has no "A op M[k]", so each xorshift stores A and reloads it into X (which then no longer holds the
 * inner offset: it is reloaded from M[BPF_M_BASE] before each packet load).
 */
#define STEER_M1 0x9E3779B1u      /* Knuth's golden-ratio multiplier */
#define STEER_M2 0x85EBCA6Bu      /* MurmurHash3 fmix32 multipliers */
#define STEER_M3 0xC2B2AE35u
#define IPV4_MAPPED_WORD2 0x0000ffffu

static uint32_t steer_absorb(uint32_t x, uint32_t w) { x = (x ^ w) * STEER_M1; return x ^ (x >> 15); }
static uint32_t steer_finish(uint32_t x, uint32_t k1) { x = (x ^ k1) * STEER_M2; return x ^ (x >> 16); }

static uint32_t steer_addr(const uint32_t *key, const uint32_t *w) {
  uint32_t x = key[0];
  for (int i = 0; i < 4; i++) x = steer_absorb(x, w[i]);
  return steer_finish(x, key[1]);
}

static uint32_t steering_index(const uint32_t *key, const uint32_t *s, const uint32_t *d, uint32_t count) {
  uint32_t h = steer_addr(key, s) + steer_addr(key, d);
  h ^= h >> 16;
  h *= STEER_M3;
  h ^= h >> 16;
  return h % count;
}

#define OP(c, k) p[n++] = (struct sock_filter)BPF_STMT((c), (k))

/* A ^= A >> shift (clobbers X). */
static int emit_xorshift(struct sock_filter *p, int n, uint32_t shift) {
  OP(BPF_ST, BPF_M_TMP), OP(BPF_ALU | BPF_RSH | BPF_K, shift), OP(BPF_LDX | BPF_W | BPF_MEM, BPF_M_TMP);
  OP(BPF_ALU | BPF_XOR | BPF_X, 0);
  return n;
}

/* A = absorb(state, A) where A holds (state ^ word) already: the multiply and the xorshift. */
static int emit_absorb_tail(struct sock_filter *p, int n) {
  OP(BPF_ALU | BPF_MUL | BPF_K, STEER_M1);
  return emit_xorshift(p, n, 15);
}

/* A = finish(A). */
static int emit_finish(struct sock_filter *p, int n, uint32_t k1) {
  OP(BPF_ALU | BPF_XOR | BPF_K, k1), OP(BPF_ALU | BPF_MUL | BPF_K, STEER_M2);
  return emit_xorshift(p, n, 16);
}

/* A = addr(IPv4 word at inner offset + off). */
static int emit_v4_addr(struct sock_filter *p, int n, uint32_t off, uint32_t mapped_state, uint32_t k1) {
  OP(BPF_LDX | BPF_W | BPF_MEM, BPF_M_BASE), OP(BPF_LD | BPF_W | BPF_IND, off);
  OP(BPF_ALU | BPF_XOR | BPF_K, mapped_state);
  n = emit_absorb_tail(p, n);
  return emit_finish(p, n, k1);
}

/* A = addr(the four IPv6 address words at inner offset + off). */
static int emit_v6_addr(struct sock_filter *p, int n, uint32_t off, const uint32_t *key) {
  for (uint32_t i = 0; i < 4; i++) {
    OP(BPF_LDX | BPF_W | BPF_MEM, BPF_M_BASE), OP(BPF_LD | BPF_W | BPF_IND, off + 4 * i);
    if (i == 0) OP(BPF_ALU | BPF_XOR | BPF_K, key[0]);
    else OP(BPF_LDX | BPF_W | BPF_MEM, BPF_M_STATE), OP(BPF_ALU | BPF_XOR | BPF_X, 0);
    n = emit_absorb_tail(p, n);
    if (i < 3) OP(BPF_ST, BPF_M_STATE);
  }
  return emit_finish(p, n, key[1]);
}

static int build_steering(struct sock_filter *p, uint32_t count, const uint32_t *key) {
  int n = 0, j4, j6, ja, v6, combine;
  const uint32_t mapped_state = steer_absorb(steer_absorb(steer_absorb(key[0], 0), 0), IPV4_MAPPED_WORD2);
#define JEQ(k) p[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), 0, 0)
  OP(BPF_LD | BPF_B | BPF_ABS, 0), OP(BPF_ALU | BPF_AND | BPF_K, GENEVE_OPT_LEN_MASK);    /* A = Opt Len */
  OP(BPF_ALU | BPF_LSH | BPF_K, 2), OP(BPF_ALU | BPF_ADD | BPF_K, GENEVE_BASE_LEN);      /* A = inner offset */
  OP(BPF_ST, BPF_M_BASE);
  OP(BPF_LD | BPF_H | BPF_ABS, GENEVE_PROTO_OFF);
  j4 = n, JEQ(ETHERTYPE_IPV4), j6 = n, JEQ(ETHERTYPE_IPV6), OP(BPF_RET | BPF_K, 0);
  /* IPv4: the jump lands here (jt 0 is the next instruction) */
  n = emit_v4_addr(p, n, IPV4_SRC_OFF, mapped_state, key[1]);
  OP(BPF_ST, BPF_M_ACC);
  n = emit_v4_addr(p, n, IPV4_DST_OFF, mapped_state, key[1]);
  ja = n, OP(BPF_JMP | BPF_JA, 0);
  v6 = n;
  n = emit_v6_addr(p, n, IPV6_ADDRS_OFF, key);
  OP(BPF_ST, BPF_M_ACC);
  n = emit_v6_addr(p, n, IPV6_ADDRS_OFF + 16, key);
  combine = n;                                                                            /* A = addr(dst) */
  OP(BPF_LDX | BPF_W | BPF_MEM, BPF_M_ACC), OP(BPF_ALU | BPF_ADD | BPF_X, 0);            /* h = sum */
  n = emit_xorshift(p, n, 16);
  OP(BPF_ALU | BPF_MUL | BPF_K, STEER_M3);
  n = emit_xorshift(p, n, 16);
  OP(BPF_ALU | BPF_MOD | BPF_K, count), OP(BPF_RET | BPF_A, 0);
#undef JEQ
  p[j4].jt = (uint8_t)(j6 + 2 - j4 - 1);         /* past the IPv6 test and RET 0: the IPv4 block */
  p[j4].jf = 0;                                  /* next instruction: the IPv6 test */
  p[j6].jt = (uint8_t)(v6 - j6 - 1);
  p[j6].jf = 0;                                  /* next instruction: RET 0 */
  p[ja].k = (uint32_t)(combine - ja - 1);
  return n;
}
#undef OP

static napi_value js_open_udp_group(napi_env env, napi_callback_info info) {
  ARGS(5);
  UINT(0, "addr", 0xffffffffu, addr);
  UINT(1, "port", 65535, port);
  UINT(2, "count", MAX_GROUP, count);
  UINT(3, "bufBytes", 0x7fffffff, buf_bytes);
  uint32_t *key;
  if (get_typed(env, argv[4], "steeringKey", napi_uint32_array, STEER_KEY_WORDS, (void **)&key)) return NULL;
  if (count < 1) return range_error(env, "count", "must be at least 1");
  int fds[MAX_GROUP];
  for (uint32_t i = 0; i < count; i++) {
    fds[i] = udp_socket(env, addr, port, buf_bytes, 1);
    /* Port 0: the first bind picks the ephemeral port, the rest of the group joins it. */
    if (fds[i] >= 0 && port == 0) port = (uint32_t)local_port(fds[i]);
    if (fds[i] < 0) { while (i > 0) close(fds[--i]); return NULL; }
  }
  if (count > 1) {
    struct sock_filter code[STEER_PROG_MAX];
    struct sock_fprog prog = { .len = (unsigned short)build_steering(code, count, key), .filter = code };
    if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog)) {
      int err = errno;
      for (uint32_t i = 0; i < count; i++) close(fds[i]);
      return throw_errno(env, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)", err);
    }
  }
  napi_value arr;
  napi_create_array_with_length(env, count, &arr);
  for (uint32_t i = 0; i < count; i++) napi_set_element(env, arr, i, num(env, fds[i]));
  return arr;
}

static napi_value js_open_udp(napi_env env, napi_callback_info info) {
  ARGS(3);
  UINT(0, "addr", 0xffffffffu, addr);
  UINT(1, "port", 65535, port);
  UINT(2, "bufBytes", 0x7fffffff, buf_bytes);
  int fd = udp_socket(env, addr, port, buf_bytes, 0);
  return fd < 0 ? NULL : num(env, fd);
}

static napi_value open_raw(napi_env env, napi_callback_info info, int proto) {
  const int one = 1;
  ARGS(1);
  UINT(0, "bufBytes", 0x7fffffff, buf_bytes);
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) return throw_errno(env, "socket", errno);
  /* IPPROTO_RAW implies IP_HDRINCL (raw(7)); the receive socket wants IP_PKTINFO for recvOne's dstAddr. */
  if ((proto == IPPROTO_UDP && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one)) ||
      set_bufs(fd, buf_bytes, proto == IPPROTO_UDP, proto == IPPROTO_RAW)) return close_throw(env, fd, "setsockopt");
  track_fd(fd);
  return num(env, fd);
}
static napi_value js_open_raw_send(napi_env env, napi_callback_info info) { return open_raw(env, info, IPPROTO_RAW); }
static napi_value js_open_raw_udp_recv(napi_env env, napi_callback_info info) { return open_raw(env, info, IPPROTO_UDP); }

static napi_value js_local_port(napi_env env, napi_callback_info info) {
  ARGS(1);
  FD(0, fd);
  int port = local_port((int)fd);
  return port < 0 ? throw_errno(env, "getsockname", errno) : num(env, port);
}

/* ---------------------------------------------------------------- receive */

/* Fills *dst from IP_PKTINFO and returns the SO_RXQ_OVFL delta for fd since the last datagram seen
 * (fd < 0: leave the drop count to the next recvBatch). */
static uint32_t parse_cmsgs(struct msghdr *mh, int fd, uint32_t *dst) {
  uint32_t drops = 0;
  *dst = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      *dst = ntohl(pi.ipi_addr.s_addr);       /* header destination, i.e. the address GWLB sent to */
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && fd >= 0 && fd < FD_TABLE_SIZE) {
      uint32_t total;                         /* socket(7): cumulative drops, sent only when non-zero */
      memcpy(&total, CMSG_DATA(c), sizeof total);
      drops += total - ovfl_last[fd];         /* unsigned: survives the counter wrapping */
      ovfl_last[fd] = total;
    }
  }
  return drops;
}

static napi_value js_recv_batch(napi_env env, napi_callback_info info) {
  ARGS(7);
  FD(0, fd);
  uint8_t *buf, *trunc;
  size_t buf_len;
  uint32_t *lens, *src, *dst;
  uint16_t *sport;
  double *stats;
  if (get_buf(env, argv[1], "buf", &buf, &buf_len)) return NULL;
  UINT(2, "slotSize", 0x7fffffff, slot);
  UINT(3, "headroom", 0x7fffffff, headroom);
  UINT(4, "maxCount", 0x7fffffff, max);
  if (max < 1 || max > MAX_BATCH) return range_error(env, "maxCount", "must be 1..1024");
  if (headroom >= slot) return range_error(env, "headroom", "must be smaller than slotSize");
  if ((uint64_t)slot * max > buf_len) return range_error(env, "buf", "is smaller than slotSize * maxCount");
  if (get_field(env, argv[5], "lens", napi_uint32_array, max, (void **)&lens) ||
      get_field(env, argv[5], "srcAddr", napi_uint32_array, max, (void **)&src) ||
      get_field(env, argv[5], "srcPort", napi_uint16_array, max, (void **)&sport) ||
      get_field(env, argv[5], "dstAddr", napi_uint32_array, max, (void **)&dst) ||
      get_field(env, argv[5], "truncated", napi_uint8_array, max, (void **)&trunc) ||
      get_typed(env, argv[6], "stats", napi_float64_array, 1, (void **)&stats)) return NULL;
  for (uint32_t i = 0; i < max; i++) {     /* the kernel rewrites namelen/controllen: reset every call */
    S->iov[i] = (struct iovec){ buf + (size_t)i * slot + headroom, slot - headroom };
    S->msgs[i].msg_hdr = (struct msghdr){ &S->names[i], sizeof S->names[i], &S->iov[i], 1,
                                          S->cmsg[i].buf, CMSG_SLOT_BYTES, 0 };
  }
  int n;
  do n = recvmmsg((int)fd, S->msgs, max, MSG_DONTWAIT, NULL); while (n < 0 && errno == EINTR);
  if (n < 0) return would_block(errno) ? num(env, 0) : throw_errno(env, "recvmmsg", errno);
  uint32_t drops = 0;
  for (int i = 0; i < n; i++) {
    struct msghdr *mh = &S->msgs[i].msg_hdr;
    /* Without MSG_TRUNC in the call flags msg_len is what was stored; msg_flags says whether more was cut. */
    lens[i] = S->msgs[i].msg_len;
    trunc[i] = (mh->msg_flags & MSG_TRUNC) ? 1 : 0;
    src[i] = ntohl(S->names[i].sin_addr.s_addr);
    sport[i] = ntohs(S->names[i].sin_port);
    drops += parse_cmsgs(mh, (int)fd, &dst[i]);
  }
  stats[0] += drops;
  return num(env, n);
}

static napi_value js_recv_one(napi_env env, napi_callback_info info) {
  ARGS(3);
  FD(0, fd);
  uint8_t *buf;
  size_t buf_len;
  double *out;
  if (get_buf(env, argv[1], "buf", &buf, &buf_len) ||
      get_typed(env, argv[2], "info", napi_float64_array, 3, (void **)&out)) return NULL;
  struct sockaddr_in sa = { 0 };
  struct iovec iov = { buf, buf_len };
  union { struct cmsghdr align; char buf[CMSG_SLOT_BYTES]; } cm;
  struct msghdr mh = { &sa, sizeof sa, &iov, 1, cm.buf, sizeof cm.buf, 0 };
  ssize_t n;
  uint32_t dst;
  do n = recvmsg((int)fd, &mh, MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n < 0) return would_block(errno) ? num(env, 0) : throw_errno(env, "recvmsg", errno);
  parse_cmsgs(&mh, -1, &dst);
  out[0] = ntohl(sa.sin_addr.s_addr);
  out[1] = ntohs(sa.sin_port);
  out[2] = dst;
  return num(env, (double)n);
}

/* ---------------------------------------------------------------- send */

/* One's-complement sum (RFC 1071 §4.1) in native byte order: by §2(B) the order only has to be applied
 * consistently, and stored back with memcpy the result lands in network order. 32-bit adds into a 64-bit
 * accumulator are folded at the end (§2(C)). An odd trailing byte is padded with zero on the right. */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  uint32_t w32;
  uint16_t w16;
  for (; len >= 4; p += 4, len -= 4) { memcpy(&w32, p, 4); sum += w32; }
  if (len >= 2) { memcpy(&w16, p, 2); sum += w16; p += 2; len -= 2; }
  if (len) { uint8_t last[2] = { p[0], 0 }; memcpy(&w16, last, 2); sum += w16; }
  return sum;
}

static uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t host) { uint16_t v = htons(host); memcpy(p, &v, 2); }

/* Writes IPv4 (RFC 791 §3.1) + UDP (RFC 768) headers into the 28 bytes at p, before a payload of plen. */
static void write_headers(uint8_t *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                          uint32_t plen, uint16_t id) {
  uint8_t *udp = p + IPV4_HDR_LEN;
  uint32_t src_n = htonl(src), dst_n = htonl(dst);
  uint16_t udp_len = (uint16_t)(UDP_HDR_LEN + plen), ck;
  p[0] = IPV4_VERSION_IHL, p[1] = 0;          /* TOS 0 */
  put16(p + 2, (uint16_t)(RAW_HEADROOM + plen)), put16(p + 4, id);
  put16(p + 6, 0);                            /* flags + fragment offset 0: we never exceed GWLB's MTU (§2) */
  p[8] = IPV4_TTL, p[9] = IPPROTO_UDP_NUM;
  put16(p + 10, 0);                           /* header checksum, computed below */
  memcpy(p + 12, &src_n, 4), memcpy(p + 16, &dst_n, 4);
  ck = csum_fold(csum_add(0, p, IPV4_HDR_LEN));
  memcpy(p + 10, &ck, 2);
  put16(udp, sport), put16(udp + 2, dport), put16(udp + 4, udp_len), put16(udp + 6, 0);
  /* RFC 768: the checksum covers the pseudo header (src, dst, zero, protocol, UDP length), the UDP header
   * and the data. Native-order sum of network-order fields, as in csum_add. */
  uint64_t sum = (uint64_t)src_n + dst_n + htons(IPPROTO_UDP_NUM) + htons(udp_len);
  ck = csum_fold(csum_add(sum, udp, udp_len));
  if (ck == 0) ck = 0xffff;                   /* RFC 768: a computed zero is transmitted as all ones */
  memcpy(udp + 6, &ck, 2);
}

/* Errors that belong to the socket, not to one datagram: retrying the next datagram cannot help. */
static int socket_wide_error(int err) {
  return err == EBADF || err == ENOTSOCK || err == EFAULT || err == EOPNOTSUPP || err == EDESTADDRREQ || err == ENOTCONN;
}

/* Send statistics a caller may pass as the optional last argument of sendRawBatch/sendUdpBatch. */
#define SEND_STAT_FAILED 0        /* datagrams skipped because their own send failed (EACCES, EMSGSIZE, ...) */
#define SEND_STAT_BYTES 1         /* UDP payload bytes sent */
#define SEND_STAT_ERRNO 2         /* errno of the latest per-datagram failure */
#define SEND_STAT_LEN 3
#define SEND_FULL_RETRIES 4       /* consecutive EAGAIN/ENOBUFS without progress before the rest is given up */

/*
 * sendmmsg until every one of n datagrams is sent or given up; returns how many were sent.
 * sendmmsg(2) stops at the first datagram that fails and reports the count before it; the next call, starting
 * at that datagram, returns its error. A per-datagram error (the kernel refused that destination or that size)
 * skips that datagram alone, recorded in skipped[] and st; the rest of the batch goes on. A full send buffer
 * (EAGAIN/ENOBUFS) is retried a few times, then the rest is left unsent (skipped = 1 for each). Only an error
 * of the socket itself (EBADF...) throws, with `sent` = datagrams sent before it.
 */
static int64_t send_all(napi_env env, int fd, struct mmsghdr *msgs, uint32_t n, uint32_t already,
                        uint8_t *skipped, double *st) {
  uint32_t k = 0, sent = 0;
  int full = 0;
  while (k < n) {
    int r = sendmmsg(fd, msgs + k, n - k, 0);
    if (r > 0) { k += (uint32_t)r; sent += (uint32_t)r; full = 0; continue; }
    if (r < 0 && errno == EINTR) continue;
    int err = r == 0 ? EAGAIN : errno;        /* 0 sent with datagrams left: treat as a full buffer */
    if (would_block(err) || err == ENOBUFS) {
      if (++full <= SEND_FULL_RETRIES) continue;
      while (k < n) skipped[k++] = 1;
      break;
    }
    if (socket_wide_error(err)) {
      napi_value e = errno_error(env, "sendmmsg", err);
      napi_set_named_property(env, e, "sent", num(env, already + sent));
      napi_throw(env, e);
      return -1;
    }
    skipped[k++] = 1;
    if (st != NULL) { st[SEND_STAT_FAILED] += 1; st[SEND_STAT_ERRNO] = err; }
  }
  return sent;
}

static void set_msg(scratch_t *S, uint32_t j, uint8_t *base, size_t len, uint32_t addr, uint16_t port) {
  S->iov[j] = (struct iovec){ base, len };
  S->names[j] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(addr) };
  S->msgs[j].msg_hdr = (struct msghdr){ &S->names[j], sizeof S->names[j], &S->iov[j], 1, NULL, 0, 0 };
}

static napi_value send_batch(napi_env env, napi_callback_info info, int raw) {
  size_t argc = 5;
  napi_value argv[5];
  scratch_t *S;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&S) != napi_ok) return NULL;
  if (argc < 4) return type_error(env, "arguments", "complete (4 or 5 expected)");
  FD(0, fd);
  uint8_t *buf;
  size_t buf_len;
  uint32_t *offs, *lens, *saddr = NULL, *daddr;
  uint16_t *sport = NULL, *dport;
  double *st = NULL;
  if (get_buf(env, argv[1], "buf", &buf, &buf_len)) return NULL;
  UINT(3, "count", 0xffffffffu, count);
  if (get_field(env, argv[2], "offs", napi_uint32_array, count, (void **)&offs) ||
      get_field(env, argv[2], "lens", napi_uint32_array, count, (void **)&lens) ||
      get_field(env, argv[2], "dstAddr", napi_uint32_array, count, (void **)&daddr) ||
      get_field(env, argv[2], "dstPort", napi_uint16_array, count, (void **)&dport) ||
      (raw && (get_field(env, argv[2], "srcAddr", napi_uint32_array, count, (void **)&saddr) ||
               get_field(env, argv[2], "srcPort", napi_uint16_array, count, (void **)&sport))) ||
      (argc >= 5 && get_typed(env, argv[4], "stats", napi_float64_array, SEND_STAT_LEN, (void **)&st))) return NULL;
  /* Validate everything before writing a byte: a bad entry must not leave half a batch rewritten. */
  uint32_t headroom = raw ? RAW_HEADROOM : 0;
  for (uint32_t i = 0; i < count; i++) {
    if (offs[i] < headroom) return range_error(env, "offs[i]", "leaves no room for the 28-byte IPv4+UDP header");
    if (offs[i] > buf_len || lens[i] > buf_len - offs[i]) return range_error(env, "offs[i] + lens[i]", "exceeds buf");
    if (lens[i] > IPV4_MAX_TOTAL_LEN - RAW_HEADROOM) return range_error(env, "lens[i]", "exceeds the IPv4 maximum");
  }
  uint32_t done = 0, sent_total = 0;
  while (done < count) {
    uint32_t n = count - done < MAX_BATCH ? count - done : MAX_BATCH;
    uint32_t id = raw ? __atomic_fetch_add(&ipv4_id_counter, n, __ATOMIC_RELAXED) : 0;
    for (uint32_t j = 0; j < n; j++) {
      uint32_t i = done + j;
      S->skipped[j] = 0;
      if (raw) {
        uint8_t *hdr = buf + offs[i] - RAW_HEADROOM;
        write_headers(hdr, saddr[i], daddr[i], sport[i], dport[i], lens[i], (uint16_t)(id + j));
        /* Raw sockets take no port: sin_port must be 0 or the protocol number (raw(7)). */
        set_msg(S, j, hdr, (size_t)lens[i] + RAW_HEADROOM, daddr[i], 0);
      } else {
        set_msg(S, j, buf + offs[i], lens[i], daddr[i], dport[i]);
      }
    }
    int64_t sent = send_all(env, (int)fd, S->msgs, n, sent_total, S->skipped, st);
    if (sent < 0) return NULL;
    sent_total += (uint32_t)sent;
    if (st != NULL)
      for (uint32_t j = 0; j < n; j++) if (!S->skipped[j]) st[SEND_STAT_BYTES] += lens[done + j];
    done += n;
  }
  return num(env, sent_total);
}
static napi_value js_send_raw_batch(napi_env env, napi_callback_info info) { return send_batch(env, info, 1); }
static napi_value js_send_udp_batch(napi_env env, napi_callback_info info) { return send_batch(env, info, 0); }

/* Validates buf[off, off + len) into *p (an empty Buffer may have a NULL base, so status is separate). */
static int get_span(napi_env env, napi_value *argv, uint8_t **p, uint32_t *len) {
  size_t buf_len;
  uint32_t off;
  if (get_buf(env, argv[0], "buf", p, &buf_len) || get_uint(env, argv[1], "off", 0xffffffffu, &off) ||
      get_uint(env, argv[2], "len", 0xffffffffu, len)) return -1;
  if (off > buf_len || *len > buf_len - off) return range_error(env, "off + len", "exceeds buf"), -1;
  *p += off;
  return 0;
}

static napi_value js_send_one(napi_env env, napi_callback_info info) {
  ARGS(6);
  FD(0, fd);
  uint32_t len;
  uint8_t *p;
  if (get_span(env, argv + 1, &p, &len)) return NULL;
  UINT(4, "dstAddr", 0xffffffffu, addr);
  UINT(5, "dstPort", 65535, port);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(addr) };
  ssize_t n;
  do n = sendto((int)fd, p, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa); while (n < 0 && errno == EINTR);
  if (n < 0) return would_block(errno) ? num(env, 0) : throw_errno(env, "sendto", errno);
  return num(env, (double)n);
}

static napi_value rw_fd(napi_env env, napi_callback_info info, int write_mode) {
  ARGS(4);
  FD(0, fd);
  uint32_t len;
  uint8_t *p;
  if (get_span(env, argv + 1, &p, &len)) return NULL;
  ssize_t n;
  do n = write_mode ? write((int)fd, p, len) : read((int)fd, p, len); while (n < 0 && errno == EINTR);
  if (n < 0) return would_block(errno) ? num(env, 0) : throw_errno(env, write_mode ? "write" : "read", errno);
  return num(env, (double)n);
}
static napi_value js_read_fd(napi_env env, napi_callback_info info) { return rw_fd(env, info, 0); }
static napi_value js_write_fd(napi_env env, napi_callback_info info) { return rw_fd(env, info, 1); }

static napi_value js_open_tun(napi_env env, napi_callback_info info) {
  ARGS(1);
  struct ifreq ifr;
  size_t name_len;
  memset(&ifr, 0, sizeof ifr);
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &name_len) != napi_ok) return type_error(env, "name", "a string");
  if (name_len >= IFNAMSIZ) return range_error(env, "name", "is longer than IFNAMSIZ - 1 (15) bytes");
  napi_get_value_string_utf8(env, argv[0], ifr.ifr_name, IFNAMSIZ, &name_len);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;        /* bare IP packets, as GENEVE carries them (docs/architecture.md §2) */
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open", errno);
  if (ioctl(fd, TUNSETIFF, &ifr)) return close_throw(env, fd, "ioctl(TUNSETIFF)");
  return num(env, fd);
}

/* ---------------------------------------------------------------- steering (JS mirror of the BPF) */

static napi_value js_steering_index(napi_env env, napi_callback_info info) {
  ARGS(4);
  uint32_t *s, *d, *key;
  if (get_typed(env, argv[0], "innerSrcWords", napi_uint32_array, 4, (void **)&s) ||
      get_typed(env, argv[1], "innerDstWords", napi_uint32_array, 4, (void **)&d)) return NULL;
  UINT(2, "count", MAX_GROUP, count);
  if (get_typed(env, argv[3], "steeringKey", napi_uint32_array, STEER_KEY_WORDS, (void **)&key)) return NULL;
  if (count < 1) return range_error(env, "count", "must be at least 1");
  /* IPv4 arrives IPv4-mapped ([0, 0, 0xffff, a]), the form the BPF program's IPv4 path starts from. */
  return num(env, steering_index(key, s, d, count));
}

/* ---------------------------------------------------------------- poll */

/* Freed when both the uv handle has closed and the JS close function is collected (either order). */
typedef struct {
  uv_poll_t handle;                           /* first: the uv_close callback gets its address */
  napi_env env;
  int fd;
  napi_ref cb;                                /* strong reference, dropped in poll_stop */
  napi_async_context actx;
  int stopped, uv_closed, js_gone, in_callback;
} poll_t;

/* Active poll per fd. libuv forbids two handles on one fd and closing an fd under an active handle
 * (events for a reused fd number would reach the stale handle), so poll() refuses the first and close()
 * stops the poll first. Each fd is used by one thread, so no locking; fds past the table go unguarded. */
static poll_t *polled[FD_TABLE_SIZE];

static void poll_maybe_free(poll_t *p) { if (p->uv_closed && p->js_gone) free(p); }
static void poll_on_uv_close(uv_handle_t *h) { poll_t *p = h->data; p->uv_closed = 1; poll_maybe_free(p); }
static void poll_on_js_gone(napi_env env, void *data, void *hint) { poll_t *p = data; p->js_gone = 1; poll_maybe_free(p); }

static void poll_release(poll_t *p) {
  if (p->cb == NULL) return;
  napi_delete_reference(p->env, p->cb);
  napi_async_destroy(p->env, p->actx);
  p->cb = NULL;
}

/* Runs on close() or at environment teardown (worker exit), while the env is still usable. */
static void poll_stop(void *arg) {
  poll_t *p = arg;
  if (p->stopped) return;
  p->stopped = 1;
  if (p->fd < FD_TABLE_SIZE && polled[p->fd] == p) polled[p->fd] = NULL;
  uv_poll_stop(&p->handle);
  if (!p->in_callback) poll_release(p);       /* else after make_callback returns: it still uses both */
  uv_close((uv_handle_t *)&p->handle, poll_on_uv_close);
}

static void poll_on_event(uv_poll_t *h, int status, int events) {
  poll_t *p = h->data;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value fn, global, result, exc;
  bool pending = false;
  if (p->stopped) return;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, p->cb, &fn);
  napi_get_global(env, &global);
  /* make_callback (not call_function) so nextTick and promise jobs run after the callback, as for core I/O. */
  p->in_callback = 1;
  napi_make_callback(env, p->actx, global, fn, 0, NULL, &result);
  napi_is_exception_pending(env, &pending);
  if (pending) {                              /* route to 'uncaughtException' (or worker 'error'), not abort */
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);           /* runs the handlers now; they too may close the poll */
  }
  p->in_callback = 0;
  if (p->stopped) poll_release(p);            /* closed from inside the callback or a handler */
  napi_close_handle_scope(env, scope);
}

static void poll_close(poll_t *p) {
  if (p->stopped) return;
  napi_remove_env_cleanup_hook(p->env, poll_stop, p);
  poll_stop(p);
}

static napi_value js_poll_close(napi_env env, napi_callback_info info) {
  poll_t *p;
  size_t argc = 0;
  if (napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&p) == napi_ok) poll_close(p);
  return NULL;
}

static napi_value js_poll(napi_env env, napi_callback_info info) {
  ARGS(2);
  FD(0, fd);
  napi_valuetype t;
  uv_loop_t *loop;
  napi_value obj, close_fn;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) return type_error(env, "onReadable", "a function");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  if (fd < FD_TABLE_SIZE && polled[fd] != NULL) return throw_errno(env, "poll", EEXIST);
  poll_t *p = calloc(1, sizeof *p);
  if (p == NULL) return throw_errno(env, "calloc", ENOMEM);
  int r = uv_poll_init(loop, &p->handle, (int)fd);
  if (r < 0) { free(p); return throw_errno(env, "uv_poll_init", -r); }
  p->handle.data = p;
  p->env = env;
  p->fd = (int)fd;
  napi_create_reference(env, argv[1], 1, &p->cb);
  napi_async_init(env, NULL, str(env, "gwlb_net.poll"), &p->actx);
  napi_create_object(env, &obj);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_poll_close, p, &close_fn);
  napi_add_finalizer(env, close_fn, p, poll_on_js_gone, NULL, NULL);
  napi_set_named_property(env, obj, "close", close_fn);
  napi_add_env_cleanup_hook(env, poll_stop, p);
  r = uv_poll_start(&p->handle, UV_READABLE, poll_on_event);
  if (r < 0) { poll_close(p); return throw_errno(env, "uv_poll_start", -r); }
  if (fd < FD_TABLE_SIZE) polled[fd] = p;
  return obj;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  FD(0, fd);
  track_fd((int)fd);
  if (fd < FD_TABLE_SIZE && polled[fd] != NULL && polled[fd]->env == env) poll_close(polled[fd]);
  /* Linux releases the fd even when close() reports EINTR; retrying could close someone else's fd. */
  if (close((int)fd) && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

/* ---------------------------------------------------------------- module */

static void free_scratch(napi_env env, void *data, void *hint) { free(data); }

NAPI_MODULE_INIT() {
  scratch_t *S = malloc(sizeof *S);
  if (S == NULL || napi_set_instance_data(env, S, free_scratch, NULL) != napi_ok) {
    free(S);
    napi_throw_error(env, "ENOMEM", "gwlb_net: cannot allocate batch scratch");
    return NULL;
  }
  const struct { const char *name; napi_callback fn; } fns[] = {
    { "openUdpGroup", js_open_udp_group }, { "openUdp", js_open_udp }, { "localPort", js_local_port },
    { "openRawSend", js_open_raw_send }, { "openRawUdpRecv", js_open_raw_udp_recv },
    { "recvBatch", js_recv_batch }, { "sendRawBatch", js_send_raw_batch }, { "sendUdpBatch", js_send_udp_batch },
    { "recvOne", js_recv_one }, { "sendOne", js_send_one }, { "poll", js_poll }, { "close", js_close },
    { "openTun", js_open_tun }, { "readFd", js_read_fd }, { "writeFd", js_write_fd },
    { "steeringIndex", js_steering_index },
  };
  napi_property_descriptor props[sizeof fns / sizeof fns[0]];
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    props[i] = (napi_property_descriptor){ fns[i].name, NULL, fns[i].fn, NULL, NULL, NULL, napi_enumerable, S };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], props);
  return exports;
}
