/*
 * tun.c: TUN devices (design brief section 4).
 *
 * open("/dev/net/tun") + ioctl(TUNSETIFF, IFF_TUN | IFF_NO_PI [| IFF_MULTI_QUEUE]
 * [| IFF_VNET_HDR]), non-blocking. Readiness comes from a uv_poll_t on the fd
 * (node's stream machinery refuses TUN fds, and fs.read on the threadpool is
 * slower and may reorder). On each wake-up up to TUN_READS_PER_WAKE read()s
 * fill the JS-owned arena, and the batch goes to JS in one call. Writes are
 * one packet per write(): a TUN device takes each write as exactly one packet.
 *
 * Offload mode (IFF_VNET_HDR): every read/write carries a 10-byte
 * virtio_net_hdr first. With TUNSETOFFLOAD(TUN_F_CSUM|TUN_F_TSO4) the kernel
 * may hand over a TCP super-packet of up to 64 KiB (gso_type TCPV4) or a
 * packet whose checksum is left for us (NEEDS_CSUM); both are completed here
 * (segment.c) so JS only ever sees ordinary IPv4 packets. Single writes get
 * an all-zero header (no GSO, checksum already complete); writeMany merges
 * runs of TCP segments back into super-packets (tun_write_coalesced).
 */
#define _GNU_SOURCE
#include "sn.h"
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* Flags of tunOpen (kept in sync with net/native/addon.ts). */
#define SN_TUN_MULTI_QUEUE 1
#define SN_TUN_VNET_HDR 2

/* Counter slots (kept in sync with TUN_STAT in net/native/addon.ts). */
enum {
  TS_RX_PACKETS,
  TS_RX_BYTES,
  TS_TX_PACKETS,
  TS_TX_BYTES,
  TS_TX_ERRORS,
  TS_RX_ERRORS,
  TS_RX_DROPPED,
  TS_RX_SUPER,
  TS_TX_SUPER,
  TS_LAST_TX_ERRNO,
  TS_COUNT
};

/* One read must always have room for the largest IPv4 packet. */
#define TUN_READ_SPACE 65536
/* Reads per wake-up: bounds the time one device holds the event loop. */
#define TUN_READS_PER_WAKE 64
#define VNET_HDR_LEN ((int)sizeof(struct virtio_net_hdr))

typedef struct {
  sn_io io; /* first: an sn_io* is an sn_tun* */
  int vnet;
  uint8_t *arena;
  size_t arena_len;
  uint32_t *offsets, *lengths;
  size_t max_entries;
  uint8_t *scratch; /* offload mode: the super-packet being split */
  char label[IFNAMSIZ + 8];
} sn_tun;

static const struct virtio_net_hdr zero_vnet_hdr;

static void tun_destroy(sn_io *io) {
  sn_tun *t = (sn_tun *)io;
  free(t->scratch);
  free(t);
}

static inline size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Hands the batch collected so far to JS; returns -1 if JS closed the device. */
static int tun_flush(sn_tun *t, uint32_t *n, size_t *off, double *bytes) {
  uint32_t count = *n;
  t->io.stats[TS_RX_PACKETS] += count;
  t->io.stats[TS_RX_BYTES] += *bytes;
  *n = 0;
  *off = 0;
  *bytes = 0;
  return sn_io_deliver(&t->io, count);
}

static void tun_readable(sn_io *io) {
  sn_tun *t = (sn_tun *)io;
  double *st = io->stats;
  uint32_t n = 0;
  size_t off = 0;
  double bytes = 0;
  int reads = 0;

  while (reads < TUN_READS_PER_WAKE) {
    struct virtio_net_hdr vh;
    struct iovec iov[2];
    ssize_t r;
    size_t len;
    uint8_t *pkt;
    sn_tso tso;

    if (n == t->max_entries || t->arena_len - off < TUN_READ_SPACE) {
      if (tun_flush(t, &n, &off, &bytes) < 0) return;
    }
    pkt = t->arena + off;
    if (t->vnet) {
      iov[0].iov_base = &vh;
      iov[0].iov_len = VNET_HDR_LEN;
      iov[1].iov_base = pkt;
      iov[1].iov_len = TUN_READ_SPACE;
      r = readv(io->fd, iov, 2);
    } else {
      r = read(io->fd, pkt, TUN_READ_SPACE);
    }
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      st[TS_RX_ERRORS]++;
      if (e == EBADFD || e == EBADF || e == ENODEV || e == ENXIO) {
        /* The device is gone (e.g. destroyed with its namespace). */
        if (tun_flush(t, &n, &off, &bytes) < 0) return;
        sn_io_fail(io, t->label, e);
        return;
      }
      break;
    }
    reads++;
    if (!t->vnet) {
      len = (size_t)r;
    } else if (r < VNET_HDR_LEN) {
      st[TS_RX_DROPPED]++;
      continue;
    } else {
      len = (size_t)r - VNET_HDR_LEN;
      if ((vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE) {
        if (sn_tso_prepare(&vh, pkt, len, &tso) < 0) {
          st[TS_RX_DROPPED]++;
          continue;
        }
        /* Split from a copy: the segments are written over the arena. */
        memcpy(t->scratch, pkt, tso.len);
        tso.pkt = t->scratch;
        st[TS_RX_SUPER]++;
        for (uint32_t i = 0; i < tso.nseg; i++) {
          size_t seglen = sn_tso_seglen(&tso, i);
          if (n == t->max_entries || t->arena_len - off < seglen) {
            if (tun_flush(t, &n, &off, &bytes) < 0) return;
          }
          sn_tso_segment(&tso, i, t->arena + off);
          t->offsets[n] = (uint32_t)off;
          t->lengths[n] = (uint32_t)seglen;
          n++;
          bytes += (double)seglen;
          off += align8(seglen);
        }
        continue;
      }
      if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && sn_csum_complete(&vh, pkt, len) < 0) {
        st[TS_RX_DROPPED]++;
        continue;
      }
    }
    t->offsets[n] = (uint32_t)off;
    t->lengths[n] = (uint32_t)len;
    n++;
    bytes += (double)len;
    off += align8(len);
  }
  tun_flush(t, &n, &off, &bytes);
}

/* Writes one packet; returns 1, or 0 after counting the error. */
static int tun_write_one(sn_tun *t, const uint8_t *p, size_t len) {
  double *st = t->io.stats;
  ssize_t r;
  if (t->io.closed) {
    st[TS_TX_ERRORS]++;
    st[TS_LAST_TX_ERRNO] = EBADF;
    return 0;
  }
  do {
    if (t->vnet) {
      struct iovec iov[2] = {{(void *)&zero_vnet_hdr, VNET_HDR_LEN}, {(void *)p, len}};
      r = writev(t->io.fd, iov, 2);
    } else {
      r = write(t->io.fd, p, len);
    }
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    /* EIO while the link is down is normal at start-up: count, don't throw. */
    st[TS_TX_ERRORS]++;
    st[TS_LAST_TX_ERRNO] = errno;
    return 0;
  }
  st[TS_TX_PACKETS]++;
  st[TS_TX_BYTES] += (double)len;
  return 1;
}

/*
 * Offload mode, writeMany: consecutive in-sequence segments of one TCP flow
 * go to the kernel as ONE super-packet (virtio GSO TCPV4, CHECKSUM_PARTIAL),
 * gathered with writev() straight from the caller's buffer -- the receive-side
 * counterpart of the TSO split (what GRO does in a NIC driver). The node's
 * stack then handles one packet per run instead of one per segment. Anything
 * else is written one packet at a time. Returns the packets accepted.
 */
static uint32_t tun_write_coalesced(sn_tun *t, const uint8_t *data, const uint32_t *po, const uint32_t *pl,
                                    uint32_t count) {
  double *st = t->io.stats;
  sn_gro_seg segs[SN_GRO_MAX_SEGS], carry;
  struct iovec iov[SN_GRO_MAX_SEGS + 2];
  uint8_t hdr[SN_IPV4_MIN_HDR + 60];
  struct virtio_net_hdr vh;
  uint32_t ok = 0, i = 0, n;
  int has_carry = 0;

  while (i < count) {
    size_t total = 0, hl;
    double bytes = 0;
    ssize_t r;
    n = 0;
    if (has_carry) {
      segs[0] = carry;
      has_carry = 0;
      n = 1;
    } else if (sn_gro_accept(data + po[i], pl[i], &segs[0]) == 0) {
      n = 1;
    }
    if (n == 1) {
      total = segs[0].plen;
      while (i + n < count && n < SN_GRO_MAX_SEGS && sn_gro_accept(data + po[i + n], pl[i + n], &segs[n]) == 0) {
        if (!sn_gro_follows(&segs[0], &segs[n - 1], &segs[n], total)) {
          carry = segs[n]; /* starts the next run: its checksums are already verified */
          has_carry = 1;
          break;
        }
        total += segs[n].plen;
        n++;
      }
    }
    if (n < 2 || t->io.closed) {
      ok += tun_write_one(t, data + po[i], pl[i]);
      i++;
      continue;
    }
    hl = SN_IPV4_MIN_HDR + segs[0].thl;
    sn_gro_header(&segs[0], &segs[n - 1], total, hdr, &vh);
    iov[0].iov_base = &vh;
    iov[0].iov_len = VNET_HDR_LEN;
    iov[1].iov_base = hdr;
    iov[1].iov_len = hl;
    for (uint32_t k = 0; k < n; k++) {
      iov[2 + k].iov_base = (void *)(segs[k].pkt + hl);
      iov[2 + k].iov_len = segs[k].plen;
      bytes += (double)segs[k].len;
    }
    do {
      r = writev(t->io.fd, iov, (int)n + 2);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      st[TS_TX_PACKETS] += n;
      st[TS_TX_BYTES] += bytes;
      st[TS_TX_SUPER]++;
      ok += n;
    } else if (errno == EIO) {
      st[TS_TX_ERRORS] += n; /* link down: each packet would fail alike */
      st[TS_LAST_TX_ERRNO] = EIO;
    } else {
      /* The kernel refused the super-packet: deliver the segments as they came. */
      for (uint32_t k = 0; k < n; k++) ok += tun_write_one(t, data + po[i + k], pl[i + k]);
    }
    i += n;
  }
  return ok;
}

/* tunOpen(name, flags) -> [fd, kernelName] */
static napi_value js_tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result, v;
  char name[IFNAMSIZ], what[64];
  size_t nlen;
  uint32_t flags;
  struct ifreq ifr;
  int fd, hdrsz = VNET_HDR_LEN;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    sn_throw_type(env, "tunOpen(name, flags)");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok || nlen == 0 ||
      nlen >= IFNAMSIZ - 1 + 1 || strlen(name) != nlen) {
    sn_throw(env, "EINVAL", "tunOpen: interface name must be 1..15 bytes");
    return NULL;
  }
  if (sn_get_u32(env, argv[1], "flags", &flags) < 0) return NULL;

  fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    sn_throw_errno(env, "open /dev/net/tun", errno);
    return NULL;
  }
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, nlen);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (flags & SN_TUN_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (flags & SN_TUN_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    snprintf(what, sizeof what, "TUNSETIFF %s", name);
    sn_throw_errno(env, what, e);
    return NULL;
  }
  /* Pin the header size this addon reads and writes (the kernel default, but explicit). */
  if ((flags & SN_TUN_VNET_HDR) && ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
    int e = errno;
    close(fd);
    sn_throw_errno(env, "TUNSETVNETHDRSZ", e);
    return NULL;
  }
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok || napi_create_int32(env, fd, &v) != napi_ok ||
      napi_set_element(env, result, 0, v) != napi_ok ||
      napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v) != napi_ok ||
      napi_set_element(env, result, 1, v) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

/* tunSetOffload(fd, flags) */
static napi_value js_tun_set_offload(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t fd, flags;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    sn_throw_type(env, "tunSetOffload(fd, flags)");
    return NULL;
  }
  if (sn_get_u32(env, argv[0], "fd", &fd) < 0 || sn_get_u32(env, argv[1], "flags", &flags) < 0) return NULL;
  if (ioctl((int)fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) sn_throw_errno(env, "TUNSETOFFLOAD", errno);
  return NULL;
}

/* tunCreate(fd, vnetHdr, {arena, offsets, lengths, stats}, onBatch, onError) -> handle; owns fd */
static napi_value js_tun_create(napi_env env, napi_callback_info info) {
  size_t argc = 5, n_off, n_len, n_stats;
  napi_value argv[5], arena, offsets, lengths, stats, external;
  uint32_t fd;
  int vnet;
  sn_tun *t;
  void *p;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 ||
      sn_get_u32(env, argv[0], "fd", &fd) < 0) {
    if (argc < 5) sn_throw_type(env, "tunCreate(fd, vnetHdr, arrays, onBatch, onError)");
    return NULL;
  }
  t = calloc(1, sizeof *t);
  if (!t) {
    close((int)fd);
    sn_throw(env, "ENOMEM", "tunCreate: out of memory");
    return NULL;
  }
  t->io.destroy = tun_destroy;
  t->io.on_readable = tun_readable;
  if (sn_get_bool(env, argv[1], "vnetHdr", &vnet) < 0 || sn_get_prop(env, argv[2], "arena", &arena) < 0 ||
      sn_get_prop(env, argv[2], "offsets", &offsets) < 0 || sn_get_prop(env, argv[2], "lengths", &lengths) < 0 ||
      sn_get_prop(env, argv[2], "stats", &stats) < 0 ||
      sn_get_bytes(env, arena, "arena", &t->arena, &t->arena_len) < 0 ||
      sn_get_typed(env, offsets, napi_uint32_array, "offsets", &p, &n_off) < 0 ||
      (t->offsets = p, sn_get_typed(env, lengths, napi_uint32_array, "lengths", &p, &n_len) < 0) ||
      (t->lengths = p, sn_get_typed(env, stats, napi_float64_array, "stats", &p, &n_stats) < 0) ||
      sn_get_fn(env, argv[3], "onBatch") < 0 || sn_get_fn(env, argv[4], "onError") < 0)
    goto fail;
  t->io.stats = p;
  if (t->arena_len < TUN_READ_SPACE || t->arena_len > UINT32_MAX || n_off == 0 || n_off != n_len ||
      n_stats < TS_COUNT) {
    sn_throw_range(env, "tunCreate: arena must hold 64 KiB; offsets/lengths equal and nonempty; stats too short");
    goto fail;
  }
  t->max_entries = n_off;
  t->vnet = vnet;
  if (vnet && !(t->scratch = malloc(TUN_READ_SPACE))) {
    sn_throw(env, "ENOMEM", "tunCreate: out of memory");
    goto fail;
  }
  snprintf(t->label, sizeof t->label, "TUN fd %u", fd);
  t->io.label = t->label;
  if (sn_io_init(env, &t->io, (int)fd, "SupernetTun", &external) < 0) return NULL; /* closed and freed */
  if (sn_io_keep(&t->io, arena, NULL) < 0 || sn_io_keep(&t->io, offsets, NULL) < 0 ||
      sn_io_keep(&t->io, lengths, NULL) < 0 || sn_io_keep(&t->io, stats, NULL) < 0 ||
      sn_io_keep(&t->io, argv[3], &t->io.cb_batch) < 0 || sn_io_keep(&t->io, argv[4], &t->io.cb_error) < 0) {
    sn_io_close(&t->io);
    return NULL;
  }
  return external;
fail:
  close((int)fd);
  tun_destroy(&t->io);
  return NULL;
}

static sn_tun *tun_arg(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  sn_io *io;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    sn_throw_type(env, "missing arguments");
    return NULL;
  }
  io = sn_io_unwrap(env, argv[0]);
  if (io && io->destroy != tun_destroy) {
    sn_throw_type(env, "not a TUN handle");
    return NULL;
  }
  return (sn_tun *)io;
}

/* tunStart(handle) */
static napi_value js_tun_start(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  sn_tun *t = tun_arg(env, info, 1, argv);
  if (t) sn_io_set_events(&t->io, t->io.events | UV_READABLE);
  return NULL;
}

/* tunWrite(handle, buf, off, len) -> boolean */
static napi_value js_tun_write(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  uint8_t *data;
  size_t blen;
  uint32_t off, len;
  sn_tun *t = tun_arg(env, info, 4, argv);
  if (!t || sn_get_bytes(env, argv[1], "buf", &data, &blen) < 0 || sn_get_u32(env, argv[2], "off", &off) < 0 ||
      sn_get_u32(env, argv[3], "len", &len) < 0)
    return NULL;
  if ((size_t)off + len > blen) {
    sn_throw_range(env, "tun.write: off + len exceeds the buffer");
    return NULL;
  }
  napi_get_boolean(env, tun_write_one(t, data + off, len), &result);
  return result;
}

/* tunWriteMany(handle, buf, offsets, lengths, count) -> number written */
static napi_value js_tun_write_many(napi_env env, napi_callback_info info) {
  napi_value argv[5], result;
  uint8_t *data;
  void *po, *pl;
  size_t blen, no, nl;
  uint32_t count, ok = 0;
  sn_tun *t = tun_arg(env, info, 5, argv);
  if (!t || sn_get_bytes(env, argv[1], "buf", &data, &blen) < 0 ||
      sn_get_typed(env, argv[2], napi_uint32_array, "offsets", &po, &no) < 0 ||
      sn_get_typed(env, argv[3], napi_uint32_array, "lengths", &pl, &nl) < 0 ||
      sn_get_u32(env, argv[4], "count", &count) < 0)
    return NULL;
  if (count > no || count > nl) {
    sn_throw_range(env, "tun.writeMany: count exceeds the offsets/lengths arrays");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    if ((size_t)((uint32_t *)po)[i] + ((uint32_t *)pl)[i] > blen) {
      sn_throw_range(env, "tun.writeMany: a packet exceeds the buffer");
      return NULL;
    }
  }
  if (t->vnet) {
    ok = tun_write_coalesced(t, data, po, pl, count);
  } else {
    for (uint32_t i = 0; i < count; i++) ok += tun_write_one(t, data + ((uint32_t *)po)[i], ((uint32_t *)pl)[i]);
  }
  napi_create_uint32(env, ok, &result);
  return result;
}

/*
 * segmentForTest(vnetPacket, out, offsets, lengths) -> count, or -1 if dropped.
 * Runs the offload-mode read path on one packet given with its virtio_net_hdr,
 * so tests can check segmentation against crafted super-packets.
 */
static napi_value js_segment_for_test(napi_env env, napi_callback_info info) {
  size_t argc = 4, inlen, outlen, no, nl;
  napi_value argv[4], result;
  uint8_t *in, *out;
  void *po, *pl;
  struct virtio_net_hdr vh;
  sn_tso tso;
  int32_t count = -1;
  size_t off = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      sn_get_bytes(env, argv[0], "vnetPacket", &in, &inlen) < 0 || sn_get_bytes(env, argv[1], "out", &out, &outlen) < 0 ||
      sn_get_typed(env, argv[2], napi_uint32_array, "offsets", &po, &no) < 0 ||
      sn_get_typed(env, argv[3], napi_uint32_array, "lengths", &pl, &nl) < 0)
    return NULL;
  if (inlen >= (size_t)VNET_HDR_LEN && inlen - VNET_HDR_LEN <= SN_IPV4_MAX_PACKET) {
    const uint8_t *pkt = in + VNET_HDR_LEN;
    size_t len = inlen - VNET_HDR_LEN;
    memcpy(&vh, in, VNET_HDR_LEN);
    if ((vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE) {
      if (sn_tso_prepare(&vh, pkt, len, &tso) == 0) {
        count = 0;
        for (uint32_t i = 0; i < tso.nseg; i++) {
          size_t seglen = sn_tso_seglen(&tso, i);
          if ((size_t)count >= no || (size_t)count >= nl || off + seglen > outlen) {
            sn_throw_range(env, "segmentForTest: output too small");
            return NULL;
          }
          sn_tso_segment(&tso, i, out + off);
          ((uint32_t *)po)[count] = (uint32_t)off;
          ((uint32_t *)pl)[count] = (uint32_t)seglen;
          count++;
          off += align8(seglen);
        }
      }
    } else if (len <= outlen && no > 0 && nl > 0) {
      memcpy(out, pkt, len);
      if (!(vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || sn_csum_complete(&vh, out, len) == 0) {
        ((uint32_t *)po)[0] = 0;
        ((uint32_t *)pl)[0] = (uint32_t)len;
        count = 1;
      }
    }
  }
  napi_create_int32(env, count, &result);
  return result;
}

napi_value sn_tun_init(napi_env env, napi_value exports) {
  if (sn_export(env, exports, "tunOpen", js_tun_open) < 0 ||
      sn_export(env, exports, "tunSetOffload", js_tun_set_offload) < 0 ||
      sn_export(env, exports, "tunCreate", js_tun_create) < 0 || sn_export(env, exports, "tunStart", js_tun_start) < 0 ||
      sn_export(env, exports, "tunWrite", js_tun_write) < 0 ||
      sn_export(env, exports, "tunWriteMany", js_tun_write_many) < 0 ||
      sn_export(env, exports, "segmentForTest", js_segment_for_test) < 0)
    return NULL;
  return exports;
}
