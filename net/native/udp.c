/*
 * udp.c: the underlay UDP/IPv4 socket with batched system calls
 * (design brief section 4: recvmmsg/sendmmsg measured ~35-45% faster than
 * node:dgram on the packet path).
 *
 * Receive: on each wake-up one recvmmsg() fills up to `vlen` fixed 64 KiB
 * slots of the JS-owned arena; the batch goes to JS in one call. With UDP_GRO
 * the kernel may coalesce a run of equal-sized datagrams from one sender into
 * one message (the segment size arrives as a UDP_GRO cmsg); it is split back
 * into datagrams here, without copying. SO_RXQ_OVFL reports kernel drops.
 *
 * Send: JS copies datagrams into the send arena and fills the send arrays;
 * udpSend builds one mmsghdr per datagram, or with UDP GSO one per run of
 * equal-sized datagrams to the same peer (UDP_SEGMENT cmsg, the last one may
 * be shorter), and calls sendmmsg(). EAGAIN stops the flush: the unsent
 * tail stays queued in JS and the poll also waits for writability.
 */
#define _GNU_SOURCE
#include "sn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* Option flags of udpCreate (kept in sync with net/native/addon.ts). */
#define SN_UDP_GSO 1
#define SN_UDP_GRO 2

/* Counter slots (kept in sync with UDP_STAT in net/native/addon.ts). */
enum {
  US_RX_DATAGRAMS,
  US_RX_BYTES,
  US_TX_DATAGRAMS,
  US_TX_BYTES,
  US_TX_ERRORS,
  US_RX_ERRORS,
  US_RX_TRUNCATED,
  US_RX_KERNEL_DROPS,
  US_TX_DROPPED,
  US_RX_GRO_MESSAGES,
  US_TX_GSO_MESSAGES,
  US_TX_BLOCKED,
  US_LAST_TX_ERRNO,
  US_GSO_DISABLED,
  US_COUNT
};

/* Receive slot: any UDP/IPv4 datagram or GRO message (capped near 64 KiB) fits. */
#define UDP_SLOT 65536
#define UDP_MAX_VLEN 64
/* Largest UDP/IPv4 payload: 65535 - 20 (IPv4) - 8 (UDP). */
#define UDP_MAX_PAYLOAD 65507
/* Segments per GSO message: UDP_MAX_SEGMENTS was 64 before Linux 6.9; stay within it. */
#define UDP_GSO_MAX_SEGS 64
/* Per-message control space: UDP_GRO (int) + SO_RXQ_OVFL (u32), or UDP_SEGMENT (u16). */
#define UDP_CTRL 64

typedef struct {
  sn_io io; /* first: an sn_io* is an sn_udp* */
  int flags;
  uint16_t port;
  char label[32];
  /* receive */
  uint8_t *rarena;
  size_t rarena_len;
  unsigned vlen;
  uint32_t *roffsets, *rlengths, *raddrs;
  uint16_t *rports;
  size_t rmax;
  struct mmsghdr *rmsgs;
  struct iovec *riov;
  struct sockaddr_in *rnames;
  uint8_t *rctrl;
  /* send */
  uint8_t *sarena;
  size_t sarena_len;
  uint32_t *soffsets, *slengths, *saddrs;
  uint16_t *sports;
  size_t smax;
  struct mmsghdr *smsgs;
  struct iovec *siov;
  struct sockaddr_in *snames;
  uint8_t *sctrl;
  uint32_t *sfirst, *scount;
  double *sbytes;
} sn_udp;

static void udp_destroy(sn_io *io) {
  sn_udp *u = (sn_udp *)io;
  free(u->rmsgs);
  free(u->riov);
  free(u->rnames);
  free(u->rctrl);
  free(u->smsgs);
  free(u->siov);
  free(u->snames);
  free(u->sctrl);
  free(u->sfirst);
  free(u->scount);
  free(u->sbytes);
  free(u);
}

static int udp_deliver(sn_udp *u, uint32_t *n, double *bytes) {
  uint32_t count = *n;
  u->io.stats[US_RX_DATAGRAMS] += count;
  u->io.stats[US_RX_BYTES] += *bytes;
  *n = 0;
  *bytes = 0;
  return sn_io_deliver(&u->io, count);
}

static void udp_readable(sn_io *io) {
  sn_udp *u = (sn_udp *)io;
  double *st = io->stats, bytes = 0;
  uint32_t n = 0;
  int r;

  for (unsigned i = 0; i < u->vlen; i++) {
    struct msghdr *mh = &u->rmsgs[i].msg_hdr;
    mh->msg_namelen = sizeof(struct sockaddr_in);
    mh->msg_controllen = UDP_CTRL;
    mh->msg_flags = 0;
  }
  do {
    r = recvmmsg(io->fd, u->rmsgs, u->vlen, MSG_DONTWAIT, NULL);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) return;
    st[US_RX_ERRORS]++;
    if (e == EBADF || e == ENOTSOCK) sn_io_fail(io, u->label, e);
    return;
  }
  for (int i = 0; i < r; i++) {
    struct msghdr *mh = &u->rmsgs[i].msg_hdr;
    const struct sockaddr_in *sa = &u->rnames[i];
    uint32_t len = u->rmsgs[i].msg_len, seg = 0, addr, base = (uint32_t)i * UDP_SLOT;
    uint16_t port;
    if (mh->msg_flags & MSG_TRUNC) {
      st[US_RX_TRUNCATED]++;
      continue;
    }
    if (mh->msg_namelen < sizeof *sa || sa->sin_family != AF_INET) {
      st[US_RX_ERRORS]++;
      continue;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int g;
        memcpy(&g, CMSG_DATA(c), sizeof g);
        if (g > 0) seg = (uint32_t)g;
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL &&
                 c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
        uint32_t drops;
        memcpy(&drops, CMSG_DATA(c), sizeof drops);
        st[US_RX_KERNEL_DROPS] = drops; /* cumulative count kept by the kernel */
      }
    }
    addr = ntohl(sa->sin_addr.s_addr);
    port = ntohs(sa->sin_port);
    if (seg == 0 || seg >= len) seg = len ? len : 1;
    else st[US_RX_GRO_MESSAGES]++;
    for (uint32_t o = 0; o < len || (len == 0 && o == 0); o += seg) {
      uint32_t l = len - o < seg ? len - o : seg;
      if (n == u->rmax && udp_deliver(u, &n, &bytes) < 0) return;
      u->roffsets[n] = base + o;
      u->rlengths[n] = l;
      u->raddrs[n] = addr;
      u->rports[n] = port;
      n++;
      bytes += l;
      if (len == 0) break;
    }
  }
  udp_deliver(u, &n, &bytes);
}

static void udp_writable(sn_io *io) { sn_io_call(io, io->cb_writable, 0, NULL); }

static void send_done(sn_udp *u, uint32_t k) {
  double *st = u->io.stats;
  st[US_TX_DATAGRAMS] += u->scount[k];
  st[US_TX_BYTES] += u->sbytes[k];
  if (u->scount[k] > 1) st[US_TX_GSO_MESSAGES]++;
}

static void send_error(sn_udp *u, uint32_t datagrams, int e) {
  u->io.stats[US_TX_ERRORS] += datagrams;
  u->io.stats[US_LAST_TX_ERRNO] = e;
}

/*
 * Sends the datagrams of GSO message k one by one (the kernel refused the
 * batch). Returns the number of its datagrams consumed; fewer than all means
 * EAGAIN.
 */
static uint32_t send_singly(sn_udp *u, uint32_t k) {
  struct msghdr one, *mh = &u->smsgs[k].msg_hdr;
  uint32_t s;
  for (s = 0; s < u->scount[k]; s++) {
    ssize_t r;
    memset(&one, 0, sizeof one);
    one.msg_name = mh->msg_name;
    one.msg_namelen = mh->msg_namelen;
    one.msg_iov = mh->msg_iov + s;
    one.msg_iovlen = 1;
    do {
      r = sendmsg(u->io.fd, &one, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      u->io.stats[US_TX_DATAGRAMS]++;
      u->io.stats[US_TX_BYTES] += (double)one.msg_iov->iov_len;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      send_error(u, 1, errno);
    }
  }
  return s;
}

/* udpSend(handle, count) -> datagrams consumed (sent or dropped); < count means EAGAIN */
static napi_value js_udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  uint32_t count, i = 0, m = 0, iv = 0, k = 0, consumed;
  sn_io *io;
  sn_udp *u;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      !(io = sn_io_unwrap(env, argv[0])))
    return NULL;
  if (io->destroy != udp_destroy) {
    sn_throw_type(env, "not a UDP handle");
    return NULL;
  }
  u = (sn_udp *)io;
  if (sn_get_u32(env, argv[1], "count", &count) < 0) return NULL;
  if (count > u->smax) {
    sn_throw_range(env, "udpSend: count exceeds the send arrays");
    return NULL;
  }
  consumed = count;
  if (io->closed) goto out;

  /* Build messages. */
  while (i < count) {
    uint32_t off = u->soffsets[i], len = u->slengths[i], segs = 1;
    struct sockaddr_in *sa = &u->snames[m];
    struct msghdr *mh = &u->smsgs[m].msg_hdr;
    double total = len;
    if ((size_t)off + len > u->sarena_len || len > UDP_MAX_PAYLOAD || u->sports[i] == 0) {
      send_error(u, 1, EINVAL);
      i++;
      continue;
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(u->saddrs[i]);
    sa->sin_port = htons(u->sports[i]);
    memset(mh, 0, sizeof *mh);
    mh->msg_name = sa;
    mh->msg_namelen = sizeof *sa;
    mh->msg_iov = &u->siov[iv];
    u->siov[iv].iov_base = u->sarena + off;
    u->siov[iv].iov_len = len;
    iv++;
    if ((u->flags & SN_UDP_GSO) && len > 0) {
      /* A run: same peer, same size, the last one may be shorter. */
      while (i + segs < count && segs < UDP_GSO_MAX_SEGS) {
        uint32_t j = i + segs, lj = u->slengths[j], oj = u->soffsets[j];
        if (u->saddrs[j] != u->saddrs[i] || u->sports[j] != u->sports[i] || lj == 0 || lj > len ||
            total + lj > UDP_MAX_PAYLOAD || (size_t)oj + lj > u->sarena_len)
          break;
        u->siov[iv].iov_base = u->sarena + oj;
        u->siov[iv].iov_len = lj;
        iv++;
        segs++;
        total += lj;
        if (lj < len) break;
      }
      if (segs > 1) {
        uint8_t *ctrl = u->sctrl + (size_t)m * UDP_CTRL;
        struct cmsghdr *c = (struct cmsghdr *)ctrl;
        uint16_t gso_size = (uint16_t)len;
        memset(ctrl, 0, UDP_CTRL);
        mh->msg_control = ctrl;
        mh->msg_controllen = CMSG_SPACE(sizeof gso_size);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof gso_size);
        memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
      }
    }
    mh->msg_iovlen = segs;
    u->sfirst[m] = i;
    u->scount[m] = segs;
    u->sbytes[m] = total;
    m++;
    i += segs;
  }

  /* Send them. */
  while (k < m) {
    int r = sendmmsg(io->fd, u->smsgs + k, m - k, MSG_DONTWAIT);
    int e;
    if (r > 0) {
      for (int q = 0; q < r; q++) send_done(u, k + (uint32_t)q);
      k += (uint32_t)r;
      continue;
    }
    e = r < 0 ? errno : EAGAIN;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      io->stats[US_TX_BLOCKED]++;
      consumed = u->sfirst[k];
      sn_io_set_events(io, io->events | UV_WRITABLE);
      break;
    }
    if (u->scount[k] > 1 && (e == EIO || e == EINVAL || e == EMSGSIZE || e == EOPNOTSUPP)) {
      uint32_t s;
      if (e == EIO) {
        /* The route's device cannot checksum-offload: GSO can never work there. */
        u->flags &= ~SN_UDP_GSO;
        io->stats[US_GSO_DISABLED] = 1;
      }
      s = send_singly(u, k);
      if (s < u->scount[k]) {
        io->stats[US_TX_BLOCKED]++;
        consumed = u->sfirst[k] + s;
        sn_io_set_events(io, io->events | UV_WRITABLE);
        break;
      }
      k++;
      continue;
    }
    /* EMSGSIZE, ENETUNREACH, EPERM (firewall), ENOBUFS, ...: drop and count. */
    send_error(u, u->scount[k], e);
    k++;
  }
out:
  napi_create_uint32(env, consumed, &result);
  return result;
}

static int set_buffer(int fd, int force_opt, int opt, uint32_t bytes) {
  int v = (int)bytes;
  /* As root, *BUFFORCE goes beyond net.core.[rw]mem_max; otherwise the capped option. */
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

/*
 * udpCreate(addr, port, rcvBuf, sndBuf, flags, arrays, onBatch, onWritable, onError) -> handle
 */
static napi_value js_udp_create(napi_env env, napi_callback_info info) {
  size_t argc = 9, count;
  napi_value argv[9], external;
  uint32_t addr, port, rcvbuf, sndbuf, flags;
  static const char *keys[] = {"recvArena", "recvOffsets", "recvLengths", "recvAddrs", "recvPorts", "sendArena",
                               "sendOffsets", "sendLengths", "sendAddrs", "sendPorts", "stats"};
  napi_value arr[11];
  size_t cnt[11];
  void *ptr[11];
  struct sockaddr_in sa;
  socklen_t salen = sizeof sa;
  int fd, one = 1;
  char what[64];
  sn_udp *u;
  size_t entries_needed;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 9) {
    sn_throw_type(env, "udpCreate(addr, port, rcvBuf, sndBuf, flags, arrays, onBatch, onWritable, onError)");
    return NULL;
  }
  if (sn_get_u32(env, argv[0], "addr", &addr) < 0 || sn_get_u32(env, argv[1], "port", &port) < 0 ||
      sn_get_u32(env, argv[2], "rcvBuf", &rcvbuf) < 0 || sn_get_u32(env, argv[3], "sndBuf", &sndbuf) < 0 ||
      sn_get_u32(env, argv[4], "flags", &flags) < 0 || sn_get_fn(env, argv[6], "onBatch") < 0 ||
      sn_get_fn(env, argv[7], "onWritable") < 0 || sn_get_fn(env, argv[8], "onError") < 0)
    return NULL;
  if (port > 65535 || rcvbuf > INT32_MAX || sndbuf > INT32_MAX) {
    sn_throw_range(env, "udpCreate: port or buffer size out of range");
    return NULL;
  }
  for (int i = 0; i < 11; i++) {
    static const napi_typedarray_type types[] = {napi_uint8_array,  napi_uint32_array, napi_uint32_array,
                                                 napi_uint32_array, napi_uint16_array, napi_uint8_array,
                                                 napi_uint32_array, napi_uint32_array, napi_uint32_array,
                                                 napi_uint16_array, napi_float64_array};
    if (sn_get_prop(env, argv[5], keys[i], &arr[i]) < 0 ||
        (types[i] == napi_uint8_array
             ? sn_get_bytes(env, arr[i], keys[i], (uint8_t **)&ptr[i], &cnt[i])
             : sn_get_typed(env, arr[i], types[i], keys[i], &ptr[i], &cnt[i])) < 0)
      return NULL;
  }
  count = cnt[0] / UDP_SLOT;
  if (count > UDP_MAX_VLEN) count = UDP_MAX_VLEN;
  entries_needed = count * ((flags & SN_UDP_GRO) ? UDP_GSO_MAX_SEGS : 1);
  if (count == 0 || cnt[1] < entries_needed || cnt[2] < cnt[1] || cnt[3] < cnt[1] || cnt[4] < cnt[1] ||
      cnt[6] == 0 || cnt[7] < cnt[6] || cnt[8] < cnt[6] || cnt[9] < cnt[6] || cnt[10] < US_COUNT ||
      cnt[0] > UINT32_MAX || cnt[5] > UINT32_MAX) {
    sn_throw_range(env, "udpCreate: receive arena/arrays or send arrays too small, or stats too short");
    return NULL;
  }

  fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    sn_throw_errno(env, "socket", errno);
    return NULL;
  }
  if ((rcvbuf && set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf) < 0) ||
      (sndbuf && set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf) < 0) ||
      setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) < 0) {
    int e = errno;
    close(fd);
    sn_throw_errno(env, "setsockopt", e);
    return NULL;
  }
  if (flags & SN_UDP_GRO) {
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0) flags &= ~(uint32_t)SN_UDP_GRO;
  }
  if (flags & SN_UDP_GSO) {
    int seg = 0;
    socklen_t sl = sizeof seg;
    if (getsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, &sl) < 0) flags &= ~(uint32_t)SN_UDP_GSO;
  }
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(addr);
  sa.sin_port = htons((uint16_t)port);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    snprintf(what, sizeof what, "bind %u.%u.%u.%u:%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255,
             addr & 255, port);
    sn_throw_errno(env, what, e);
    return NULL;
  }
  if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
    int e = errno;
    close(fd);
    sn_throw_errno(env, "getsockname", e);
    return NULL;
  }

  u = calloc(1, sizeof *u);
  if (!u) {
    close(fd);
    sn_throw(env, "ENOMEM", "udpCreate: out of memory");
    return NULL;
  }
  u->io.destroy = udp_destroy;
  u->io.on_readable = udp_readable;
  u->io.on_writable = udp_writable;
  u->io.stats = ptr[10];
  u->flags = (int)flags;
  u->port = ntohs(sa.sin_port);
  snprintf(u->label, sizeof u->label, "UDP port %u", u->port);
  u->io.label = u->label;
  u->rarena = ptr[0];
  u->rarena_len = cnt[0];
  u->vlen = (unsigned)count;
  u->roffsets = ptr[1];
  u->rlengths = ptr[2];
  u->raddrs = ptr[3];
  u->rports = ptr[4];
  u->rmax = cnt[1];
  u->sarena = ptr[5];
  u->sarena_len = cnt[5];
  u->soffsets = ptr[6];
  u->slengths = ptr[7];
  u->saddrs = ptr[8];
  u->sports = ptr[9];
  u->smax = cnt[6];
  u->rmsgs = calloc(u->vlen, sizeof *u->rmsgs);
  u->riov = calloc(u->vlen, sizeof *u->riov);
  u->rnames = calloc(u->vlen, sizeof *u->rnames);
  u->rctrl = calloc(u->vlen, UDP_CTRL);
  u->smsgs = calloc(u->smax, sizeof *u->smsgs);
  u->siov = calloc(u->smax, sizeof *u->siov);
  u->snames = calloc(u->smax, sizeof *u->snames);
  u->sctrl = calloc(u->smax, UDP_CTRL);
  u->sfirst = calloc(u->smax, sizeof *u->sfirst);
  u->scount = calloc(u->smax, sizeof *u->scount);
  u->sbytes = calloc(u->smax, sizeof *u->sbytes);
  if (!u->rmsgs || !u->riov || !u->rnames || !u->rctrl || !u->smsgs || !u->siov || !u->snames || !u->sctrl ||
      !u->sfirst || !u->scount || !u->sbytes) {
    close(fd);
    udp_destroy(&u->io);
    sn_throw(env, "ENOMEM", "udpCreate: out of memory");
    return NULL;
  }
  for (unsigned i = 0; i < u->vlen; i++) {
    struct msghdr *mh = &u->rmsgs[i].msg_hdr;
    u->riov[i].iov_base = u->rarena + (size_t)i * UDP_SLOT;
    u->riov[i].iov_len = UDP_SLOT;
    mh->msg_name = &u->rnames[i];
    mh->msg_iov = &u->riov[i];
    mh->msg_iovlen = 1;
    mh->msg_control = u->rctrl + (size_t)i * UDP_CTRL;
  }
  if (sn_io_init(env, &u->io, fd, "SupernetUdp", &external) < 0) return NULL; /* closed and freed */
  for (int i = 0; i < 11; i++) {
    if (sn_io_keep(&u->io, arr[i], NULL) < 0) {
      sn_io_close(&u->io);
      return NULL;
    }
  }
  if (sn_io_keep(&u->io, argv[6], &u->io.cb_batch) < 0 || sn_io_keep(&u->io, argv[7], &u->io.cb_writable) < 0 ||
      sn_io_keep(&u->io, argv[8], &u->io.cb_error) < 0) {
    sn_io_close(&u->io);
    return NULL;
  }
  return external;
}

static sn_udp *udp_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  sn_io *io;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      !(io = sn_io_unwrap(env, argv[0])))
    return NULL;
  if (io->destroy != udp_destroy) {
    sn_throw_type(env, "not a UDP handle");
    return NULL;
  }
  return (sn_udp *)io;
}

static napi_value js_udp_port(napi_env env, napi_callback_info info) {
  napi_value result;
  sn_udp *u = udp_arg(env, info);
  if (!u) return NULL;
  napi_create_uint32(env, u->port, &result);
  return result;
}

static napi_value js_udp_flags(napi_env env, napi_callback_info info) {
  napi_value result;
  sn_udp *u = udp_arg(env, info);
  if (!u) return NULL;
  napi_create_uint32(env, (uint32_t)u->flags, &result);
  return result;
}

static napi_value js_udp_start(napi_env env, napi_callback_info info) {
  sn_udp *u = udp_arg(env, info);
  if (u) sn_io_set_events(&u->io, u->io.events | UV_READABLE);
  return NULL;
}

napi_value sn_udp_init(napi_env env, napi_value exports) {
  if (sn_export(env, exports, "udpCreate", js_udp_create) < 0 || sn_export(env, exports, "udpPort", js_udp_port) < 0 ||
      sn_export(env, exports, "udpFlags", js_udp_flags) < 0 || sn_export(env, exports, "udpStart", js_udp_start) < 0 ||
      sn_export(env, exports, "udpSend", js_udp_send) < 0)
    return NULL;
  return exports;
}
