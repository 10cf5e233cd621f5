/*
 * Supernet native packet I/O addon: shared declarations.
 *
 * One "io" object per file descriptor (a TUN queue or a UDP socket). It owns
 * the fd, a uv_poll_t watching it on the Node event loop, and strong
 * references to the JS-owned arrays it reads into and to the JS callbacks.
 * On each wake-up it moves a batch of packets and makes ONE JS call for the
 * batch (design brief section 4: per-packet cost is the enemy).
 */
#ifndef SN_H
#define SN_H

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>
#include <stddef.h>
#include <stdint.h>

#define SN_MAX_REFS 16

typedef struct sn_io sn_io;

struct sn_io {
  napi_env env;
  int fd;                 /* -1 once closed */
  uv_poll_t poll;
  int uv_open;            /* uv_poll_init done, uv_close callback not yet run */
  int events;             /* UV_READABLE / UV_WRITABLE currently requested */
  int closed;             /* close() ran (explicitly, by failure or at env teardown) */
  int finalized;          /* the JS external was garbage-collected */
  napi_async_cleanup_hook_handle cleanup;
  napi_async_context actx;
  napi_ref refs[SN_MAX_REFS];
  int nrefs;
  napi_ref cb_batch, cb_error, cb_writable;
  double *stats;
  const char *label;      /* prefix of error messages, e.g. "TUN fd 12" */
  void (*on_readable)(sn_io *io);
  void (*on_writable)(sn_io *io);
  void (*destroy)(sn_io *io); /* frees the kind-specific allocations */
};

/* Errors: all throw a JS Error whose .code is the errno name (or the given code). */
void sn_throw_errno(napi_env env, const char *what, int err);
void sn_throw(napi_env env, const char *code, const char *msg);
void sn_throw_range(napi_env env, const char *msg);
void sn_throw_type(napi_env env, const char *msg);
napi_value sn_make_errno(napi_env env, const char *what, int err);

/* Argument helpers: return 0 on success, -1 after throwing. */
int sn_get_u32(napi_env env, napi_value v, const char *name, uint32_t *out);
int sn_get_bool(napi_env env, napi_value v, const char *name, int *out);
int sn_get_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
int sn_get_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *name,
                 void **data, size_t *count);
int sn_get_fn(napi_env env, napi_value v, const char *name);
int sn_get_prop(napi_env env, napi_value obj, const char *key, napi_value *out);

/* io lifecycle (io.c). `io` must be zeroed, with on_readable etc. set. */
int sn_io_init(napi_env env, sn_io *io, int fd, const char *resource, napi_value *external);
int sn_io_keep(sn_io *io, napi_value v, napi_ref *out); /* strong ref, released at close */
sn_io *sn_io_unwrap(napi_env env, napi_value v);
void sn_io_set_events(sn_io *io, int events);
void sn_io_close(sn_io *io);
/* Calls JS inside the poll callback's handle scope; returns 0, or -1 if the io closed meanwhile. */
int sn_io_call(sn_io *io, napi_ref fn, size_t argc, napi_value *argv);
int sn_io_deliver(sn_io *io, uint32_t count); /* calls cb_batch(count) */
void sn_io_fail(sn_io *io, const char *what, int err); /* stops I/O, calls cb_error(Error) */

/* Module parts. */
napi_value sn_tun_init(napi_env env, napi_value exports);
napi_value sn_udp_init(napi_env env, napi_value exports);
napi_value sn_aead_init(napi_env env, napi_value exports);
int sn_export(napi_env env, napi_value exports, const char *name, napi_callback fn);

#endif
