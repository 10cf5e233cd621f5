/*
 * Benchmark-only addon (bench/fuse-handoff.ts): a FUSE filesystem on
 * libfuse 2's low-level API whose requests are read and answered on the
 * Node.js event loop. The /dev/fuse descriptor is non-blocking and polled by
 * libuv; each request calls the JS handler directly (no libfuse thread, no
 * hand-off), and the handler replies whenever its promise settles, through
 * the reply functions below. It serves just enough (lookup, getattr,
 * readlink) to time one request's round trip against fuse-native's
 * high-level path, where a libfuse thread wakes the JS thread and waits to
 * be woken back (docs/benchmarks.md, "FUSE request hand-off").
 *
 *   mount(path, handler(op, req, ino, name))   op: 1 lookup, 2 getattr, 3 readlink
 *   replyErr(req, errno)
 *   replyEntry(req, ino, mode, size, nlink)    replyAttr(req, ino, mode, size, nlink)
 *   replyReadlink(req, target)
 *   unmount()
 *
 * One mount per process; a request must be answered exactly once.
 */
#define FUSE_USE_VERSION 29
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OP_LOOKUP = 1, OP_GETATTR = 2, OP_READLINK = 3 };
static const double TIMEOUT_S = 1.0;

static struct fuse_session *se;
static struct fuse_chan *ch;
static char *rbuf;
static size_t rbuf_len;
static uv_poll_t upoll;
static napi_env genv;
static napi_ref handler_ref;
static char mnt[4096];

static void call_js(int op, fuse_req_t req, fuse_ino_t ino, const char *name) {
  napi_value fn, recv, argv[4];
  napi_get_reference_value(genv, handler_ref, &fn);
  napi_get_global(genv, &recv);
  napi_create_int32(genv, op, &argv[0]);
  napi_create_bigint_uint64(genv, (uint64_t)(uintptr_t)req, &argv[1]);
  napi_create_double(genv, (double)ino, &argv[2]);
  if (name) napi_create_string_utf8(genv, name, NAPI_AUTO_LENGTH, &argv[3]);
  else napi_get_null(genv, &argv[3]);
  /* make_callback, not call_function: promise jobs the handler queues run when it returns. */
  if (napi_make_callback(genv, NULL, recv, fn, 4, argv, NULL) != napi_ok) fuse_reply_err(req, EIO);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  call_js(OP_LOOKUP, req, parent, name);
}
static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  call_js(OP_GETATTR, req, ino, NULL);
}
static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { call_js(OP_READLINK, req, ino, NULL); }

static const struct fuse_lowlevel_ops ops = {
    .lookup = ll_lookup,
    .getattr = ll_getattr,
    .readlink = ll_readlink,
};

/* Every queued request, until the non-blocking read says there is none. */
static void on_readable(uv_poll_t *h, int status, int events) {
  (void)h;
  (void)status;
  (void)events;
  napi_handle_scope scope;
  napi_open_handle_scope(genv, &scope);
  for (;;) {
    struct fuse_chan *c = ch;
    int n = fuse_chan_recv(&c, rbuf, rbuf_len);
    if (n <= 0) break; /* -EAGAIN: drained; 0: unmounted */
    fuse_session_process(se, rbuf, n, c);
  }
  napi_close_handle_scope(genv, scope);
}

static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t n;
  if (se || argc < 2 || napi_get_value_string_utf8(env, argv[0], mnt, sizeof mnt, &n) != napi_ok) {
    napi_throw_error(env, NULL, "mount(path, handler): one mount per process");
    return NULL;
  }
  genv = env;
  napi_create_reference(env, argv[1], 1, &handler_ref);
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  fuse_opt_add_arg(&args, "fuse-ll");
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, "fsname=fuse-ll,default_permissions");
  ch = fuse_mount(mnt, &args);
  if (!ch) {
    fuse_opt_free_args(&args);
    napi_throw_error(env, NULL, "fuse_mount failed");
    return NULL;
  }
  se = fuse_lowlevel_new(&args, &ops, sizeof ops, NULL);
  fuse_opt_free_args(&args);
  if (!se) {
    fuse_unmount(mnt, ch);
    napi_throw_error(env, NULL, "fuse_lowlevel_new failed");
    return NULL;
  }
  fuse_session_add_chan(se, ch);
  int fd = fuse_chan_fd(ch);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  rbuf_len = fuse_chan_bufsize(ch);
  rbuf = malloc(rbuf_len);
  uv_poll_init(uv_default_loop(), &upoll, fd);
  uv_poll_start(&upoll, UV_READABLE, on_readable);
  return NULL;
}

static napi_value js_unmount(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  if (!se) return NULL;
  uv_poll_stop(&upoll);
  fuse_session_remove_chan(ch);
  fuse_session_destroy(se);
  fuse_unmount(mnt, ch);
  free(rbuf);
  se = NULL;
  return NULL;
}

static fuse_req_t req_of(napi_env env, napi_value v) {
  uint64_t r = 0;
  bool lossless;
  napi_get_value_bigint_uint64(env, v, &r, &lossless);
  return (fuse_req_t)(uintptr_t)r;
}

/* argv: req, ino, mode, size, nlink */
static void stat_of(napi_env env, napi_value *argv, struct stat *st) {
  double v[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4; i++) napi_get_value_double(env, argv[i + 1], &v[i]);
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)v[0];
  st->st_mode = (mode_t)v[1];
  st->st_size = (off_t)v[2];
  st->st_nlink = (nlink_t)v[3];
}

#define ARGS(n)        \
  size_t argc = n;     \
  napi_value argv[n];  \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL)

static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t e = EIO;
  napi_get_value_int32(env, argv[1], &e);
  fuse_reply_err(req_of(env, argv[0]), e);
  return NULL;
}

static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  ARGS(5);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  stat_of(env, argv, &e.attr);
  e.ino = e.attr.st_ino;
  e.attr_timeout = TIMEOUT_S;
  e.entry_timeout = TIMEOUT_S;
  fuse_reply_entry(req_of(env, argv[0]), &e);
  return NULL;
}

static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  ARGS(5);
  struct stat st;
  stat_of(env, argv, &st);
  fuse_reply_attr(req_of(env, argv[0]), &st, TIMEOUT_S);
  return NULL;
}

static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  ARGS(2);
  char target[4096];
  size_t n;
  if (napi_get_value_string_utf8(env, argv[1], target, sizeof target, &n) != napi_ok) {
    fuse_reply_err(req_of(env, argv[0]), EIO);
    return NULL;
  }
  fuse_reply_readlink(req_of(env, argv[0]), target);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"mount", 0, js_mount, 0, 0, 0, napi_default, 0},
      {"unmount", 0, js_unmount, 0, 0, 0, napi_default, 0},
      {"replyErr", 0, js_reply_err, 0, 0, 0, napi_default, 0},
      {"replyEntry", 0, js_reply_entry, 0, 0, 0, napi_default, 0},
      {"replyAttr", 0, js_reply_attr, 0, 0, 0, napi_default, 0},
      {"replyReadlink", 0, js_reply_readlink, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
