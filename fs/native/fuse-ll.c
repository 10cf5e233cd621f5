/*
 * The Supernet filesystem's FUSE binding: libfuse 2's low-level API, served
 * on the Node.js event loop (docs/storage.md, "FUSE binding").
 *
 * fuse-native (libfuse's high-level API) reads each request on a libfuse
 * thread, wakes the JS thread with it and sleeps until the answer comes back:
 * two thread hand-offs per request, which bench/fuse-handoff measured at
 * about half of a small request's time. Here the /dev/fuse descriptor is
 * non-blocking and polled by libuv; every queued request is read and handed
 * to one JS dispatcher on the loop's own thread, and the dispatcher answers
 * whenever its promise settles, through the reply functions below. The
 * kernel may have many requests outstanding at once.
 *
 * Requests the filesystem has nothing to do for are answered here without
 * JS: forget (inode numbers are never reused, so there are no lookup counts
 * to keep), link (EPERM: the format has no hard links). flush, access,
 * xattrs and locks are left unimplemented, so libfuse answers ENOSYS once
 * and the kernel stops sending them (locks then stay local to the kernel).
 *
 * JS side: fs/fuse-ll.ts. A request is known to JS by a slot id (index and
 * generation); every reply takes the id, answers the request exactly once
 * and frees the slot, and a second or late reply is refused (returns false),
 * never sent: a request pointer cannot be used after libfuse freed it.
 *
 * Attributes travel through two Float64Arrays shared with JS at mount
 * (no object per request): ST for what JS answers (stat or statfs fields,
 * layout ST_*), IN for what setattr asks (layout IN_*).
 */
#define FUSE_USE_VERSION 29
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <math.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <uv.h>

/* Operation codes passed to the dispatcher (fs/fuse-ll.ts, Op). */
enum {
  OP_INIT = 0,
  OP_LOOKUP = 1,
  OP_GETATTR = 2,
  OP_SETATTR = 3,
  OP_READLINK = 4,
  OP_MKNOD = 5,
  OP_MKDIR = 6,
  OP_UNLINK = 7,
  OP_RMDIR = 8,
  OP_SYMLINK = 9,
  OP_RENAME = 10,
  OP_OPEN = 11,
  OP_READ = 12,
  OP_WRITE = 13,
  OP_RELEASE = 14,
  OP_FSYNC = 15,
  OP_OPENDIR = 16,
  OP_READDIR = 17,
  OP_RELEASEDIR = 18,
  OP_FSYNCDIR = 19,
  OP_STATFS = 20,
  OP_CREATE = 21,
  OP_GONE = 22,
};

/* ST layout (stat): ino mode nlink uid gid rdev size blocks blksize atime mtime ctime (ms). */
enum { ST_INO, ST_MODE, ST_NLINK, ST_UID, ST_GID, ST_RDEV, ST_SIZE, ST_BLOCKS, ST_BLKSIZE,
       ST_ATIME, ST_MTIME, ST_CTIME, ST_LEN };
/* ST layout (statfs) reuses the slots: bsize frsize blocks bfree bavail files ffree favail namemax. */
enum { SF_BSIZE, SF_FRSIZE, SF_BLOCKS, SF_BFREE, SF_BAVAIL, SF_FILES, SF_FFREE, SF_FAVAIL,
       SF_NAMEMAX };
/* IN layout (setattr): to_set mode uid gid size atime mtime fh (ms; fh -1 if none). */
enum { IN_TOSET, IN_MODE, IN_UID, IN_GID, IN_SIZE, IN_ATIME, IN_MTIME, IN_FH, IN_LEN };

#define SLOT_BITS 20
#define SLOT_MAX (1u << SLOT_BITS)

typedef struct mount_s {
  struct fuse_session *se;
  struct fuse_chan *ch;
  char *rbuf;
  size_t rbuf_len;
  uv_poll_t poll;
  bool polling, gone;
  napi_env env;
  napi_ref dispatch, st_ref, in_ref;
  double *st, *in;
  double entry_timeout, attr_timeout;
  char mnt[4096];
} mount_t;

/*
 * A write's data is copied into a buffer that belongs to the request's slot
 * and is kept for the slot's next write: the handler is done with it once
 * the request is answered, which is also when the slot can be taken again.
 * A fresh Buffer per 128 KiB write cost a page fault per 4 KiB and fed the
 * garbage collector (docs/storage.md, "Speed"). max_write (fs/mount.ts) is
 * the largest write the kernel sends; a longer one is copied as before.
 */
#define WRITE_BUF_LEN (128 * 1024)

/* Outstanding requests of every mount: the slot's request and generation, and its write buffer. */
typedef struct {
  fuse_req_t req;
  uint32_t gen;
  napi_env wenv; /* the env whose Buffer wref is (NULL: none yet) */
  napi_ref wref;
  void *wdata;
} slot_t;
static slot_t *slots;
static uint32_t nslots, *free_list, nfree;

static int64_t slot_take(fuse_req_t req) {
  if (nfree == 0) {
    if (nslots == SLOT_MAX) return -1;
    uint32_t grow = nslots ? nslots : 1024;
    if (nslots + grow > SLOT_MAX) grow = SLOT_MAX - nslots;
    slot_t *s = realloc(slots, (nslots + grow) * sizeof *s);
    uint32_t *f = realloc(free_list, (nslots + grow) * sizeof *f);
    if (!s || !f) {
      if (s) slots = s;
      if (f) free_list = f;
      return -1;
    }
    slots = s;
    free_list = f;
    for (uint32_t i = nslots + grow; i > nslots; i--) {
      slots[i - 1].req = NULL;
      slots[i - 1].gen = 0;
      slots[i - 1].wenv = NULL;
      slots[i - 1].wref = NULL;
      slots[i - 1].wdata = NULL;
      free_list[nfree++] = i - 1;
    }
    nslots += grow;
  }
  uint32_t i = free_list[--nfree];
  slots[i].req = req;
  slots[i].gen++;
  return ((int64_t)slots[i].gen << SLOT_BITS) | i;
}

/* The request behind a slot id, freeing the slot; NULL if already answered. */
static fuse_req_t slot_give(int64_t id) {
  if (id < 0) return NULL;
  uint32_t i = (uint32_t)(id & (SLOT_MAX - 1));
  uint32_t gen = (uint32_t)(id >> SLOT_BITS);
  if (i >= nslots || !slots[i].req || slots[i].gen != gen) return NULL;
  fuse_req_t r = slots[i].req;
  slots[i].req = NULL;
  free_list[nfree++] = i;
  return r;
}

/*
 * Copies a write's data into the slot's own buffer (made on its first write)
 * and yields that Buffer, which is longer than the data: the dispatcher
 * passes the length (`b`) along. 0 if the slot has none to offer.
 */
static int slot_write_buffer(napi_env env, int64_t id, const char *data, size_t len,
                             napi_value *out) {
  slot_t *s = &slots[(uint32_t)(id & (SLOT_MAX - 1))];
  if (len > WRITE_BUF_LEN) return 0;
  if (!s->wenv) {
    napi_value b;
    void *p;
    if (napi_create_buffer(env, WRITE_BUF_LEN, &p, &b) != napi_ok ||
        napi_create_reference(env, b, 1, &s->wref) != napi_ok)
      return 0;
    s->wenv = env;
    s->wdata = p;
  }
  if (s->wenv != env || napi_get_reference_value(env, s->wref, out) != napi_ok || !*out) return 0;
  memcpy(s->wdata, data, len);
  return 1;
}

/* The dispatcher's arguments: op, slot, ino, a, b, c, d, s1, s2. */
typedef struct {
  double ino, a, b, c, d;
  const char *s1, *s2;
  const char *data;
  size_t datalen;
} call_t;

static void call_js(mount_t *m, int op, fuse_req_t req, const call_t *k) {
  napi_env env = m->env;
  int64_t id = -1;
  if (req) {
    id = slot_take(req);
    if (id < 0) {
      fuse_reply_err(req, ENOMEM);
      return;
    }
  }
  napi_value fn, recv, argv[9];
  napi_get_reference_value(env, m->dispatch, &fn);
  napi_get_global(env, &recv);
  napi_create_int32(env, op, &argv[0]);
  napi_create_double(env, (double)id, &argv[1]);
  napi_create_double(env, k->ino, &argv[2]);
  napi_create_double(env, k->a, &argv[3]);
  napi_create_double(env, k->b, &argv[4]);
  napi_create_double(env, k->c, &argv[5]);
  napi_create_double(env, k->d, &argv[6]);
  if (k->s1) napi_create_string_utf8(env, k->s1, NAPI_AUTO_LENGTH, &argv[7]);
  else napi_get_null(env, &argv[7]);
  if (k->data) {
    /* The request buffer is reused by the next read: the write's data must be copied. */
    if (!slot_write_buffer(env, id, k->data, k->datalen, &argv[8])) {
      void *p;
      napi_create_buffer_copy(env, k->datalen, k->data, &p, &argv[8]);
    }
  } else if (k->s2) {
    napi_create_string_utf8(env, k->s2, NAPI_AUTO_LENGTH, &argv[8]);
  } else {
    napi_get_null(env, &argv[8]);
  }
  /* make_callback, not call_function: the promise jobs the handler queues run when it returns. */
  napi_status s = napi_make_callback(env, NULL, recv, fn, 9, argv, NULL);
  if (s != napi_ok) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    fuse_req_t r = slot_give(id);
    if (r) fuse_reply_err(r, EIO);
  }
}

static mount_t *mount_of(fuse_req_t req) { return fuse_req_userdata(req); }

#define CALL(req, op, ...)                    \
  do {                                        \
    call_t k_ = {__VA_ARGS__};                \
    call_js(mount_of(req), op, req, &k_);     \
  } while (0)

static double fh_of(struct fuse_file_info *fi) { return fi ? (double)fi->fh : -1; }

static void ll_init(void *ud, struct fuse_conn_info *conn) {
  mount_t *m = ud;
  (void)conn;
  call_t k = {0};
  call_js(m, OP_INIT, NULL, &k);
}
static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  CALL(req, OP_LOOKUP, .ino = parent, .s1 = name);
}
static void ll_forget(fuse_req_t req, fuse_ino_t ino, unsigned long nlookup) {
  (void)ino;
  (void)nlookup;
  fuse_reply_none(req);
}
static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f) {
  (void)count;
  (void)f;
  fuse_reply_none(req);
}
static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  CALL(req, OP_GETATTR, .ino = ino, .a = fh_of(fi));
}
static double ms_of(const struct timespec *t) { return (double)t->tv_sec * 1e3 + t->tv_nsec / 1e6; }
static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi) {
  double *in = mount_of(req)->in;
  in[IN_TOSET] = to_set;
  in[IN_MODE] = attr->st_mode;
  in[IN_UID] = attr->st_uid;
  in[IN_GID] = attr->st_gid;
  in[IN_SIZE] = (double)attr->st_size;
  in[IN_ATIME] = ms_of(&attr->st_atim);
  in[IN_MTIME] = ms_of(&attr->st_mtim);
  in[IN_FH] = fh_of(fi);
  CALL(req, OP_SETATTR, .ino = ino);
}
static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { CALL(req, OP_READLINK, .ino = ino); }
static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev) {
  const struct fuse_ctx *c = fuse_req_ctx(req);
  CALL(req, OP_MKNOD, .ino = parent, .a = mode, .b = c->uid, .c = c->gid, .d = (double)rdev,
       .s1 = name);
}
static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  const struct fuse_ctx *c = fuse_req_ctx(req);
  CALL(req, OP_MKDIR, .ino = parent, .a = mode, .b = c->uid, .c = c->gid, .s1 = name);
}
static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  CALL(req, OP_UNLINK, .ino = parent, .s1 = name);
}
static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  CALL(req, OP_RMDIR, .ino = parent, .s1 = name);
}
static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  const struct fuse_ctx *c = fuse_req_ctx(req);
  CALL(req, OP_SYMLINK, .ino = parent, .b = c->uid, .c = c->gid, .s1 = name, .s2 = link);
}
static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname) {
  CALL(req, OP_RENAME, .ino = parent, .a = newparent, .s1 = name, .s2 = newname);
}
static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  (void)ino;
  (void)newparent;
  (void)newname;
  fuse_reply_err(req, EPERM);
}
static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  CALL(req, OP_OPEN, .ino = ino, .a = fi->flags);
}
static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi) {
  CALL(req, OP_READ, .ino = ino, .a = (double)fi->fh, .b = (double)size, .c = (double)off);
}
static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  CALL(req, OP_WRITE, .ino = ino, .a = (double)fi->fh, .b = (double)size, .c = (double)off,
       .data = buf, .datalen = size);
}
static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  CALL(req, OP_RELEASE, .ino = ino, .a = (double)fi->fh);
}
static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  CALL(req, OP_FSYNC, .ino = ino, .a = fh_of(fi), .b = datasync);
}
static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  CALL(req, OP_OPENDIR, .ino = ino);
}
static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi) {
  CALL(req, OP_READDIR, .ino = ino, .a = (double)fi->fh, .b = (double)size, .c = (double)off);
}
static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  CALL(req, OP_RELEASEDIR, .ino = ino, .a = (double)fi->fh);
}
static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  CALL(req, OP_FSYNCDIR, .ino = ino, .a = fh_of(fi), .b = datasync);
}
static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { CALL(req, OP_STATFS, .ino = ino); }
static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi) {
  const struct fuse_ctx *c = fuse_req_ctx(req);
  CALL(req, OP_CREATE, .ino = parent, .a = mode, .b = c->uid, .c = c->gid, .d = fi->flags,
       .s1 = name);
}

static const struct fuse_lowlevel_ops ops = {
    .init = ll_init,
    .lookup = ll_lookup,
    .forget = ll_forget,
    .forget_multi = ll_forget_multi,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .readlink = ll_readlink,
    .mknod = ll_mknod,
    .mkdir = ll_mkdir,
    .unlink = ll_unlink,
    .rmdir = ll_rmdir,
    .symlink = ll_symlink,
    .rename = ll_rename,
    .link = ll_link,
    .open = ll_open,
    .read = ll_read,
    .write = ll_write,
    .release = ll_release,
    .fsync = ll_fsync,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .releasedir = ll_releasedir,
    .fsyncdir = ll_fsyncdir,
    .statfs = ll_statfs,
    .create = ll_create,
};

static void stop_polling(mount_t *m) {
  if (m->polling) {
    uv_poll_stop(&m->poll);
    m->polling = false;
  }
}

/* Every queued request, until the non-blocking read finds none. */
static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  mount_t *m = h->data;
  napi_handle_scope scope;
  napi_open_handle_scope(m->env, &scope);
  int n = status < 0 ? 0 : -EAGAIN;
  while (status >= 0) {
    struct fuse_chan *c = m->ch;
    n = fuse_chan_recv(&c, m->rbuf, m->rbuf_len);
    if (n <= 0) break;
    fuse_session_process(m->se, m->rbuf, n, c);
  }
  /* 0: the kernel unmounted (ENODEV) or the session exited; other errors but
   * EAGAIN/EINTR end the mount too (libfuse's own loop does the same). */
  if (n != -EAGAIN && n != -EINTR && !m->gone) {
    m->gone = true;
    stop_polling(m);
    call_t k = {0};
    call_js(m, OP_GONE, NULL, &k);
  }
  napi_close_handle_scope(m->env, scope);
}

#define ARGS(n)                                                   \
  size_t argc = n;                                                \
  napi_value argv[n];                                             \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) { \
    napi_throw_type_error(env, NULL, "expected " #n " arguments"); \
    return NULL;                                                  \
  }

static double *f64_of(napi_env env, napi_value v, size_t need) {
  napi_typedarray_type t;
  size_t len;
  void *data;
  if (napi_get_typedarray_info(env, v, &t, &len, &data, NULL, NULL) != napi_ok ||
      t != napi_float64_array || len < need)
    return NULL;
  return data;
}

/* mount(mountpoint, options, dispatch, st, in, entryTimeout, attrTimeout) -> handle */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  ARGS(7);
  mount_t *m = calloc(1, sizeof *m);
  char opts[4096];
  size_t n;
  if (!m) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, argv[0], m->mnt, sizeof m->mnt, &n) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], opts, sizeof opts, &n) != napi_ok ||
      !(m->st = f64_of(env, argv[3], ST_LEN)) || !(m->in = f64_of(env, argv[4], IN_LEN)) ||
      napi_get_value_double(env, argv[5], &m->entry_timeout) != napi_ok ||
      napi_get_value_double(env, argv[6], &m->attr_timeout) != napi_ok) {
    free(m);
    napi_throw_type_error(env, NULL,
                          "mount(mountpoint, options, dispatch, Float64Array, Float64Array, "
                          "entryTimeout, attrTimeout)");
    return NULL;
  }
  m->env = env;
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  fuse_opt_add_arg(&args, "supernet");
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, opts);
  m->ch = fuse_mount(m->mnt, &args);
  if (!m->ch) {
    fuse_opt_free_args(&args);
    free(m);
    napi_throw_error(env, "EMOUNT", "fuse_mount failed (see stderr)");
    return NULL;
  }
  m->se = fuse_lowlevel_new(&args, &ops, sizeof ops, m);
  fuse_opt_free_args(&args);
  if (!m->se) {
    fuse_unmount(m->mnt, m->ch);
    free(m);
    napi_throw_error(env, "EMOUNT", "fuse_lowlevel_new failed (see stderr)");
    return NULL;
  }
  fuse_session_add_chan(m->se, m->ch);
  int fd = fuse_chan_fd(m->ch);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  m->rbuf_len = fuse_chan_bufsize(m->ch);
  m->rbuf = malloc(m->rbuf_len);
  napi_create_reference(env, argv[2], 1, &m->dispatch);
  napi_create_reference(env, argv[3], 1, &m->st_ref);
  napi_create_reference(env, argv[4], 1, &m->in_ref);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &m->poll, fd);
  m->poll.data = m;
  uv_poll_start(&m->poll, UV_READABLE, on_readable);
  m->polling = true;
  napi_value ext;
  napi_create_external(env, m, NULL, NULL, &ext);
  return ext;
}

static mount_t *handle_of(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a mount handle");
    return NULL;
  }
  return p;
}

static void on_poll_closed(uv_handle_t *h) {
  mount_t *m = h->data;
  free(m->rbuf);
  free(m);
}

/*
 * close(handle): ends the session. Requests still outstanding are answered
 * EIO first (libfuse frees them with the session), then the mount is
 * detached (lazily, as libfuse does) if the kernel still has it.
 */
static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  mount_t *m = handle_of(env, argv[0]);
  if (!m || !m->se) return NULL;
  stop_polling(m);
  m->gone = true;
  for (uint32_t i = 0; i < nslots; i++) {
    if (slots[i].req && mount_of(slots[i].req) == m) {
      fuse_req_t r = slot_give(((int64_t)slots[i].gen << SLOT_BITS) | i);
      fuse_reply_err(r, EIO);
    }
  }
  fuse_session_remove_chan(m->ch);
  fuse_session_destroy(m->se);
  fuse_unmount(m->mnt, m->ch);
  m->se = NULL;
  napi_delete_reference(env, m->dispatch);
  napi_delete_reference(env, m->st_ref);
  napi_delete_reference(env, m->in_ref);
  uv_close((uv_handle_t *)&m->poll, on_poll_closed);
  return NULL;
}

static fuse_req_t req_arg(napi_env env, napi_value v) {
  double id = -1;
  napi_get_value_double(env, v, &id);
  return slot_give((int64_t)id);
}

static napi_value ret_bool(napi_env env, bool b) {
  napi_value r;
  napi_get_boolean(env, b, &r);
  return r;
}

static void st_to_stat(const double *st, struct stat *s) {
  memset(s, 0, sizeof *s);
  s->st_ino = (ino_t)st[ST_INO];
  s->st_mode = (mode_t)st[ST_MODE];
  s->st_nlink = (nlink_t)st[ST_NLINK];
  s->st_uid = (uid_t)st[ST_UID];
  s->st_gid = (gid_t)st[ST_GID];
  s->st_rdev = (dev_t)st[ST_RDEV];
  s->st_size = (off_t)st[ST_SIZE];
  s->st_blocks = (blkcnt_t)st[ST_BLOCKS];
  s->st_blksize = (blksize_t)st[ST_BLKSIZE];
  const int idx[3] = {ST_ATIME, ST_MTIME, ST_CTIME};
  struct timespec *ts[3] = {&s->st_atim, &s->st_mtim, &s->st_ctim};
  for (int i = 0; i < 3; i++) {
    double sec = floor(st[idx[i]] / 1e3);
    long ns = lround((st[idx[i]] - sec * 1e3) * 1e6);
    if (ns >= 1000000000L) {
      sec++;
      ns -= 1000000000L;
    }
    ts[i]->tv_sec = (time_t)sec;
    ts[i]->tv_nsec = ns < 0 ? 0 : ns;
  }
}

/* replyErr(id, errno): errno > 0, or 0 for success without data. */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t e = EIO;
  napi_get_value_int32(env, argv[1], &e);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  fuse_reply_err(r, e < 0 ? -e : e);
  return ret_bool(env, true);
}

static void entry_of(mount_t *m, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  st_to_stat(m->st, &e->attr);
  e->ino = e->attr.st_ino;
  e->generation = 0; /* inode numbers are never reused (fs/volume.ts, nextIno) */
  e->entry_timeout = m->entry_timeout;
  e->attr_timeout = m->attr_timeout;
}

static struct fuse_file_info file_info(double fh) {
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)fh;
  return fi;
}

/* replyEntry(id): the entry whose attributes are in ST. */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  ARGS(1);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  struct fuse_entry_param e;
  entry_of(mount_of(r), &e);
  fuse_reply_entry(r, &e);
  return ret_bool(env, true);
}

/* replyCreate(id, fh): the created file (attributes in ST), open as fh. */
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  ARGS(2);
  double fh = 0;
  napi_get_value_double(env, argv[1], &fh);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  struct fuse_entry_param e;
  entry_of(mount_of(r), &e);
  struct fuse_file_info fi = file_info(fh);
  fuse_reply_create(r, &e, &fi);
  return ret_bool(env, true);
}

/* replyAttr(id): the attributes in ST. */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  ARGS(1);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  struct stat s;
  st_to_stat(mount_of(r)->st, &s);
  fuse_reply_attr(r, &s, mount_of(r)->attr_timeout);
  return ret_bool(env, true);
}

/* replyOpen(id, fh) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  double fh = 0;
  napi_get_value_double(env, argv[1], &fh);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  struct fuse_file_info fi = file_info(fh);
  fuse_reply_open(r, &fi);
  return ret_bool(env, true);
}

/* replyWrite(id, count) */
static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  ARGS(2);
  double n = 0;
  napi_get_value_double(env, argv[1], &n);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  fuse_reply_write(r, (size_t)n);
  return ret_bool(env, true);
}

/* replyData(id, buffer, length): the first length bytes (copied to the kernel before returning). */
static napi_value js_reply_data(napi_env env, napi_callback_info info) {
  ARGS(3);
  void *data = NULL;
  size_t len = 0;
  double n = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "replyData: not a Buffer");
    return NULL;
  }
  napi_get_value_double(env, argv[2], &n);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  if (n < 0 || (size_t)n > len) {
    fuse_reply_err(r, EIO);
    return ret_bool(env, true);
  }
  fuse_reply_buf(r, data, (size_t)n);
  return ret_bool(env, true);
}

/* replyReadlink(id, target) */
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  ARGS(2);
  char target[4097];
  size_t n;
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  if (napi_get_value_string_utf8(env, argv[1], target, sizeof target, &n) != napi_ok ||
      n >= sizeof target - 1) {
    fuse_reply_err(r, EIO);
    return ret_bool(env, true);
  }
  fuse_reply_readlink(r, target);
  return ret_bool(env, true);
}

/* replyStatfs(id): the statfs fields in ST (SF_*). */
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  ARGS(1);
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  const double *st = mount_of(r)->st;
  struct statvfs s;
  memset(&s, 0, sizeof s);
  s.f_bsize = (unsigned long)st[SF_BSIZE];
  s.f_frsize = (unsigned long)st[SF_FRSIZE];
  s.f_blocks = (fsblkcnt_t)st[SF_BLOCKS];
  s.f_bfree = (fsblkcnt_t)st[SF_BFREE];
  s.f_bavail = (fsblkcnt_t)st[SF_BAVAIL];
  s.f_files = (fsfilcnt_t)st[SF_FILES];
  s.f_ffree = (fsfilcnt_t)st[SF_FFREE];
  s.f_favail = (fsfilcnt_t)st[SF_FAVAIL];
  s.f_namemax = (unsigned long)st[SF_NAMEMAX];
  fuse_reply_statfs(r, &s);
  return ret_bool(env, true);
}

/*
 * replyDir(id, size, names, inos, start): entries start, start + 1, ... of a
 * listing (names[i] with inode number inos[i]), as many as fit in size bytes;
 * entry i's offset is i + 1, so the next readdir continues from there.
 */
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  ARGS(5);
  double size = 0, start = 0;
  uint32_t count = 0;
  napi_get_value_double(env, argv[1], &size);
  napi_get_value_double(env, argv[4], &start);
  if (napi_get_array_length(env, argv[2], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "replyDir: names is not an array");
    return NULL;
  }
  fuse_req_t r = req_arg(env, argv[0]);
  if (!r) return ret_bool(env, false);
  size_t cap = size > 0 && size < (1 << 20) ? (size_t)size : 4096;
  char *buf = malloc(cap);
  if (!buf) {
    fuse_reply_err(r, ENOMEM);
    return ret_bool(env, true);
  }
  size_t used = 0;
  char name[1024];
  struct stat st;
  memset(&st, 0, sizeof st);
  for (uint32_t i = start < 0 ? 0 : (uint32_t)start; i < count; i++) {
    napi_value nv, iv;
    size_t nl;
    double ino = 0;
    napi_get_element(env, argv[2], i, &nv);
    napi_get_element(env, argv[3], i, &iv);
    if (napi_get_value_string_utf8(env, nv, name, sizeof name, &nl) != napi_ok) continue;
    napi_get_value_double(env, iv, &ino);
    st.st_ino = (ino_t)ino;
    size_t need = fuse_add_direntry(r, NULL, 0, name, NULL, 0);
    if (used + need > cap) break;
    fuse_add_direntry(r, buf + used, cap - used, name, &st, (off_t)i + 1);
    used += need;
  }
  fuse_reply_buf(r, buf, used);
  free(buf);
  return ret_bool(env, true);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"mount", 0, js_mount, 0, 0, 0, napi_default, 0},
      {"close", 0, js_close, 0, 0, 0, napi_default, 0},
      {"replyErr", 0, js_reply_err, 0, 0, 0, napi_default, 0},
      {"replyEntry", 0, js_reply_entry, 0, 0, 0, napi_default, 0},
      {"replyCreate", 0, js_reply_create, 0, 0, 0, napi_default, 0},
      {"replyAttr", 0, js_reply_attr, 0, 0, 0, napi_default, 0},
      {"replyOpen", 0, js_reply_open, 0, 0, 0, napi_default, 0},
      {"replyWrite", 0, js_reply_write, 0, 0, 0, napi_default, 0},
      {"replyData", 0, js_reply_data, 0, 0, 0, napi_default, 0},
      {"replyReadlink", 0, js_reply_readlink, 0, 0, 0, napi_default, 0},
      {"replyStatfs", 0, js_reply_statfs, 0, 0, 0, napi_default, 0},
      {"replyDir", 0, js_reply_dir, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
