/*
 * Whole-object file I/O for fs/store.ts (putFile, getFile): open +
 * write/read loop (+ fdatasync) + close as ONE libuv threadpool job instead
 * of three or four, each of which costs the event loop a crossing, a promise
 * and a wake-up -- at one object per 256 KiB, that was a third of the mount
 * daemon's busy time during a sequential write (docs/storage.md, "Speed").
 */
#include "fsnative.h"
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_ref buf_ref;
  napi_ref cb_ref;
  char *path;
  unsigned char *data;
  size_t len;
  int write;   /* 1: putFile, 0: getFile */
  int durable; /* putFile: fdatasync before close */
  int err;     /* errno of the first failure, 0 = none */
  size_t done; /* bytes written / read */
} file_job;

static void file_execute(napi_env env, void *data) {
  (void)env;
  file_job *j = data;
  if (j->write) {
    /* O_EXCL: object ids are fresh and never written twice (fs/store.ts). */
    int fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      j->err = errno;
      return;
    }
    while (j->done < j->len) {
      ssize_t n = pwrite(fd, j->data + j->done, j->len - j->done, (off_t)j->done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        j->err = n < 0 ? errno : EIO;
        break;
      }
      j->done += (size_t)n;
    }
    if (!j->err && j->durable && fdatasync(fd) != 0) j->err = errno;
    if (close(fd) != 0 && !j->err) j->err = errno;
    return;
  }
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    j->err = errno;
    return;
  }
  /* A regular file reads short only at its end: a short read is EOF. */
  while (j->done < j->len) {
    size_t ask = j->len - j->done;
    ssize_t n = pread(fd, j->data + j->done, ask, (off_t)j->done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      j->err = errno;
      break;
    }
    j->done += (size_t)n;
    if ((size_t)n < ask) break;
  }
  close(fd);
}

static void file_complete(napi_env env, napi_status status, void *data) {
  file_job *j = data;
  napi_value cb, argv[2], undef;
  napi_get_reference_value(env, j->cb_ref, &cb);
  int e = status == napi_cancelled ? ECANCELED : j->err;
  napi_create_int32(env, e, &argv[0]);
  napi_create_double(env, (double)j->done, &argv[1]);
  napi_get_undefined(env, &undef);
  napi_delete_reference(env, j->buf_ref);
  napi_delete_reference(env, j->cb_ref);
  napi_delete_async_work(env, j->work);
  free(j->path);
  free(j);
  napi_call_function(env, undef, cb, 2, argv, NULL);
}

/* putFile(path, buf, durable, cb(errno, n)) / getFile(path, buf, cb(errno, n)) */
static napi_value file_io(napi_env env, napi_callback_info info, int write) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t want = write ? 4 : 3;
  if (argc != want) {
    fs_throw_type(env, write ? "putFile(path, buf, durable, cb)" : "getFile(path, buf, cb)");
    return NULL;
  }
  size_t plen;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &plen) != napi_ok || plen == 0 ||
      plen > 4095) {
    fs_throw_type(env, "path must be a non-empty string");
    return NULL;
  }
  unsigned char *data;
  size_t len;
  if (!fs_bytes_arg(env, argv[1], -1, &data, &len, "buf must be a Buffer")) return NULL;
  bool durable = false;
  if (write && napi_get_value_bool(env, argv[2], &durable) != napi_ok) {
    fs_throw_type(env, "durable must be a boolean");
    return NULL;
  }
  napi_value cb = argv[want - 1];
  if (!fs_fn_arg(env, cb, "cb must be a function")) return NULL;
  file_job *j = calloc(1, sizeof *j);
  char *path = malloc(plen + 1);
  if (!j || !path) {
    free(j);
    free(path);
    napi_throw_error(env, "ERR_MEMORY", "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], path, plen + 1, &plen);
  j->path = path;
  j->data = data;
  j->len = len;
  j->write = write;
  j->durable = durable;
  napi_value name;
  napi_create_string_utf8(env, write ? "supernet.putFile" : "supernet.getFile", NAPI_AUTO_LENGTH,
                          &name);
  /* The buffer stays referenced (not collected) until the job completes. */
  napi_create_reference(env, argv[1], 1, &j->buf_ref);
  napi_create_reference(env, cb, 1, &j->cb_ref);
  napi_create_async_work(env, NULL, name, file_execute, file_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return NULL;
}

napi_value fs_put_file(napi_env env, napi_callback_info info) { return file_io(env, info, 1); }
napi_value fs_get_file(napi_env env, napi_callback_info info) { return file_io(env, info, 0); }

