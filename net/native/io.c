/*
 * io.c: lifecycle of one polled file descriptor, JS calls, errors, arguments.
 *
 * Lifetime rules (why they are this way):
 * - The io owns its fd from sn_io_init on, also on failure, so the JS side
 *   never has to guess whether to close it.
 * - libuv forbids closing an fd while an active uv_poll_t watches it, and a
 *   uv handle's memory must survive until its close callback. So close()
 *   stops the poll, closes the fd at once (the port/queue is free when close()
 *   returns), then uv_close()s the handle; memory is freed only when both the
 *   close callback ran and the JS external was garbage-collected.
 * - Strong references keep the JS arrays and callbacks alive while the fd is
 *   open (an open device is not collected, like a socket); they and the async
 *   context are released in the uv close callback, outside any JS call that
 *   might still be using them.
 * - An async cleanup hook closes everything when the Node environment is torn
 *   down (worker threads, Jest environments), and holds the teardown until
 *   libuv has closed the handle.
 */
#define _GNU_SOURCE
#include "sn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Marks externals created by this addon, so a foreign object is never cast to an io. */
static const napi_type_tag SN_IO_TAG = {0x5375706572e3e7ULL, 0x6e61746976651001ULL};

/* ---------- errors ---------- */

static const char *errno_name(int err, char *buf, size_t len) {
  const char *name = strerrorname_np(err);
  if (name) return name;
  snprintf(buf, len, "E%d", err);
  return buf;
}

napi_value sn_make_errno(napi_env env, const char *what, int err) {
  char msg[256], codebuf[16];
  napi_value code, text, error, num;
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  if (napi_create_string_utf8(env, errno_name(err, codebuf, sizeof codebuf), NAPI_AUTO_LENGTH,
                              &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_error(env, code, text, &error) != napi_ok)
    return NULL;
  if (napi_create_int32(env, err, &num) == napi_ok) napi_set_named_property(env, error, "errno", num);
  return error;
}

void sn_throw_errno(napi_env env, const char *what, int err) {
  napi_value error = sn_make_errno(env, what, err);
  if (error) napi_throw(env, error);
}

void sn_throw(napi_env env, const char *code, const char *msg) { napi_throw_error(env, code, msg); }
void sn_throw_range(napi_env env, const char *msg) { napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg); }
void sn_throw_type(napi_env env, const char *msg) { napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg); }

/* ---------- arguments ---------- */

int sn_get_u32(napi_env env, napi_value v, const char *name, uint32_t *out) {
  double d;
  char msg[128];
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    snprintf(msg, sizeof msg, "%s must be an integer 0..2^32-1", name);
    sn_throw_range(env, msg);
    return -1;
  }
  *out = (uint32_t)d;
  return 0;
}

int sn_get_bool(napi_env env, napi_value v, const char *name, int *out) {
  bool b;
  char msg[128];
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    snprintf(msg, sizeof msg, "%s must be a boolean", name);
    sn_throw_type(env, msg);
    return -1;
  }
  *out = b;
  return 0;
}

int sn_get_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *name, void **data,
                 size_t *count) {
  bool is;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  char msg[128];
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &t, count, data, &ab, &off) != napi_ok || t != type) {
    snprintf(msg, sizeof msg, "%s has the wrong typed-array type", name);
    sn_throw_type(env, msg);
    return -1;
  }
  return 0;
}

int sn_get_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  bool is;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  void *p;
  char msg[128];
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &t, len, &p, &ab, &off) != napi_ok ||
      (t != napi_uint8_array && t != napi_uint8_clamped_array && t != napi_int8_array)) {
    snprintf(msg, sizeof msg, "%s must be a Buffer or Uint8Array", name);
    sn_throw_type(env, msg);
    return -1;
  }
  *data = p;
  return 0;
}

int sn_get_fn(napi_env env, napi_value v, const char *name) {
  napi_valuetype t;
  char msg[128];
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_function) {
    snprintf(msg, sizeof msg, "%s must be a function", name);
    sn_throw_type(env, msg);
    return -1;
  }
  return 0;
}

int sn_get_prop(napi_env env, napi_value obj, const char *key, napi_value *out) {
  char msg[128];
  if (napi_get_named_property(env, obj, key, out) != napi_ok) {
    snprintf(msg, sizeof msg, "missing property %s", key);
    sn_throw_type(env, msg);
    return -1;
  }
  return 0;
}

int sn_export(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f) != napi_ok) return -1;
  return napi_set_named_property(env, exports, name, f) == napi_ok ? 0 : -1;
}

/* ---------- lifecycle ---------- */

static void io_maybe_free(sn_io *io) {
  if (io->finalized && !io->uv_open) io->destroy(io);
}

static void io_release_js(sn_io *io) {
  napi_env env = io->env;
  for (int i = 0; i < io->nrefs; i++) napi_delete_reference(env, io->refs[i]);
  io->nrefs = 0;
  io->cb_batch = io->cb_error = io->cb_writable = NULL;
  if (io->actx) napi_async_destroy(env, io->actx);
  io->actx = NULL;
}

static void io_uv_closed(uv_handle_t *h) {
  sn_io *io = h->data;
  napi_handle_scope scope;
  io->uv_open = 0;
  if (!io->finalized) {
    /* The env is alive (the cleanup hook is still registered): release JS resources. */
    if (napi_open_handle_scope(io->env, &scope) == napi_ok) {
      io_release_js(io);
      napi_close_handle_scope(io->env, scope);
    }
  }
  if (io->cleanup) {
    napi_remove_async_cleanup_hook(io->cleanup);
    io->cleanup = NULL;
  }
  io_maybe_free(io);
}

void sn_io_close(sn_io *io) {
  if (io->closed) return;
  io->closed = 1;
  if (io->uv_open) uv_poll_stop(&io->poll); /* removes the fd from epoll before close() */
  io->events = 0;
  if (io->fd >= 0) {
    close(io->fd);
    io->fd = -1;
  }
  if (io->uv_open) uv_close((uv_handle_t *)&io->poll, io_uv_closed);
}

static void io_finalize(napi_env env, void *data, void *hint) {
  sn_io *io = data;
  (void)env;
  (void)hint;
  io->finalized = 1; /* from now on, never touch JS references (they may be gone) */
  sn_io_close(io);
  io_maybe_free(io);
}

static void io_cleanup_hook(napi_async_cleanup_hook_handle h, void *arg) {
  sn_io *io = arg;
  (void)h;
  sn_io_close(io); /* the uv close callback removes the hook, letting teardown proceed */
}

static void io_on_poll(uv_poll_t *h, int status, int events);

int sn_io_init(napi_env env, sn_io *io, int fd, const char *resource, napi_value *external) {
  uv_loop_t *loop;
  napi_value name;
  int rc;
  io->env = env;
  io->fd = fd;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    close(fd);
    io->destroy(io);
    sn_throw(env, "ENATIVE", "no event loop");
    return -1;
  }
  rc = uv_poll_init(loop, &io->poll, fd);
  if (rc < 0) {
    close(fd);
    io->destroy(io);
    sn_throw_errno(env, "uv_poll_init", -rc);
    return -1;
  }
  io->poll.data = io;
  io->uv_open = 1;
  if (napi_create_external(env, io, io_finalize, NULL, external) != napi_ok) {
    io->finalized = 1; /* no external exists: free as soon as libuv lets go */
    sn_io_close(io);
    sn_throw(env, "ENATIVE", "napi_create_external failed");
    return -1;
  }
  /* From here the finalizer owns the memory; failures below just close. */
  if (napi_type_tag_object(env, *external, &SN_IO_TAG) != napi_ok ||
      napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &io->actx) != napi_ok ||
      napi_add_async_cleanup_hook(env, io_cleanup_hook, io, &io->cleanup) != napi_ok) {
    sn_io_close(io);
    sn_throw(env, "ENATIVE", "initialising the native handle failed");
    return -1;
  }
  return 0;
}

int sn_io_keep(sn_io *io, napi_value v, napi_ref *out) {
  napi_ref r;
  if (io->nrefs >= SN_MAX_REFS || napi_create_reference(io->env, v, 1, &r) != napi_ok) {
    sn_throw(io->env, "ENATIVE", "too many references");
    return -1;
  }
  io->refs[io->nrefs++] = r;
  if (out) *out = r;
  return 0;
}

sn_io *sn_io_unwrap(napi_env env, napi_value v) {
  bool ok = false;
  void *p = NULL;
  if (napi_check_object_type_tag(env, v, &SN_IO_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &p) != napi_ok || !p) {
    sn_throw_type(env, "not a native packet I/O handle");
    return NULL;
  }
  return p;
}

void sn_io_set_events(sn_io *io, int events) {
  if (io->closed || events == io->events) return;
  if (events == 0) {
    uv_poll_stop(&io->poll);
  } else if (uv_poll_start(&io->poll, events, io_on_poll) < 0) {
    return;
  }
  io->events = events;
}

int sn_io_call(sn_io *io, napi_ref ref, size_t argc, napi_value *argv) {
  napi_env env = io->env;
  napi_value fn = NULL, global, result, exc;
  if (io->closed || !ref) return -1;
  if (napi_get_reference_value(env, ref, &fn) != napi_ok || !fn || napi_get_global(env, &global) != napi_ok)
    return -1;
  /* make_callback (not call_function): runs the microtask and nextTick queues
   * afterwards and keeps async_hooks/AsyncLocalStorage context, as node's own
   * socket callbacks do. */
  if (napi_make_callback(env, io->actx, global, fn, argc, argv, &result) == napi_pending_exception &&
      napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
    napi_fatal_exception(env, exc); /* a throwing handler is an uncaught exception */
  }
  return io->closed ? -1 : 0;
}

int sn_io_deliver(sn_io *io, uint32_t count) {
  napi_value arg;
  if (count == 0) return io->closed ? -1 : 0;
  if (napi_create_uint32(io->env, count, &arg) != napi_ok) return -1;
  return sn_io_call(io, io->cb_batch, 1, &arg);
}

void sn_io_fail(sn_io *io, const char *what, int err) {
  napi_value error = sn_make_errno(io->env, what, err);
  napi_ref cb = io->cb_error;
  if (io->closed) return;
  /* Stop polling first: a dead fd (e.g. its namespace was deleted) would
   * otherwise wake the loop forever. The JS callback still runs: the refs
   * and async context live until the uv close callback. */
  if (io->uv_open) uv_poll_stop(&io->poll);
  io->events = 0;
  if (error && cb) {
    napi_env env = io->env;
    napi_value fn = NULL, global, result, exc;
    if (napi_get_reference_value(env, cb, &fn) == napi_ok && fn && napi_get_global(env, &global) == napi_ok &&
        napi_make_callback(env, io->actx, global, fn, 1, &error, &result) == napi_pending_exception &&
        napi_get_and_clear_last_exception(env, &exc) == napi_ok)
      napi_fatal_exception(env, exc);
  }
  sn_io_close(io);
}

static void io_on_poll(uv_poll_t *h, int status, int events) {
  sn_io *io = h->data;
  napi_handle_scope scope;
  if (io->closed || napi_open_handle_scope(io->env, &scope) != napi_ok) return;
  if (status < 0) {
    /* libuv reports POLLERR as UV_EBADF after stopping the watcher. */
    sn_io_fail(io, io->label ? io->label : "poll", -status);
  } else {
    if ((events & UV_WRITABLE) && io->on_writable) {
      sn_io_set_events(io, io->events & ~UV_WRITABLE);
      io->on_writable(io);
    }
    if (!io->closed && (events & UV_READABLE) && io->on_readable) io->on_readable(io);
  }
  napi_close_handle_scope(io->env, scope);
}
