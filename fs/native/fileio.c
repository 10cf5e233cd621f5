/*
 * Whole-object file I/O for fs/store.ts and fs/objects.ts: open +
 * write/read loop (+ fdatasync) + close as ONE libuv threadpool job instead
 * of three or four, each of which costs the event loop a crossing, a promise
 * and a wake-up -- at one object per 256 KiB, that was a third of the mount
 * daemon's busy time during a sequential write (docs/storage.md, "Speed").
 *
 * The sealed variants fold the object's AEAD into the same job: sealPutFile
 * seals and then writes, getOpenFile reads and then opens. One job per
 * object instead of two halves the crossings again, and the JS thread never
 * touches the bulk bytes.
 *
 *   putFile(path, buf, durable, cb(errno, n))
 *   getFile(path, buf, cb(errno, n))
 *   sealPutFile(path, durable, ...seal's 10 arguments, size, cb(errno, n))
 *     seals as seal() does into `out`, then writes out[0, size)
 *   getOpenFile(path, buf, epochKey, id, info, aadRest, headerLen, nonceOff,
 *               trailerLen, out, tail, cb(errno, n, verified))
 *     reads the object into buf (n bytes) and, when n is at least a header,
 *     trailer and tag long and its body fits `out`, opens it: AAD = the
 *     object's first headerLen bytes || aadRest, nonce at nonceOff, body
 *     (bucket = n - headerLen - trailerLen - TAG_LEN bytes) into out, the
 *     trailer into tail, tag = the last TAG_LEN bytes. verified is false
 *     when it was not opened or did not authenticate (out and tail wiped);
 *     the caller checks the clear header either way.
 */
#include "fsnative.h"
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { CRYPT_NONE, CRYPT_SEAL, CRYPT_OPEN };

typedef struct {
  napi_async_work work;
  /* Buffers the job reads or writes, kept alive until the callback. */
  napi_ref refs[4];
  napi_ref cb_ref;
  char *path;
  unsigned char *data;
  size_t len;
  int write;   /* 1: a put, 0: a get */
  int durable; /* put: fdatasync before close */
  int err;     /* errno of the first failure, 0 = none */
  size_t done; /* bytes written / read */
  int crypt;
  int verified;
  /* getOpenFile: where the object's parts are. */
  size_t header_len, nonce_off, trailer_len, out_cap;
  aead_owned o;
} file_job;

static void put_execute(file_job *j) {
  if (j->crypt == CRYPT_SEAL && !fs_aead_run(&j->o.a, 0)) {
    j->err = EIO;
    return;
  }
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
}

/* Points the open at the object just read (getOpenFile); 0 when it cannot hold one. */
static int aim_open(file_job *j) {
  aead_args *a = &j->o.a;
  size_t n = j->done;
  if (n < j->header_len + j->trailer_len + TAG_LEN || j->nonce_off + NONCE_LEN > j->header_len ||
      j->header_len + a->aadl > MAX_AAD)
    return 0;
  size_t bucket = n - j->header_len - j->trailer_len - TAG_LEN;
  if (bucket > j->out_cap) return 0;
  /* The AAD starts with the clear header as stored: aadRest was copied behind it. */
  memmove(j->o.aad + j->header_len, j->o.aad, a->aadl);
  memcpy(j->o.aad, j->data, j->header_len);
  a->aadl += j->header_len;
  a->aad = j->o.aad;
  memcpy(j->o.nonce, j->data + j->nonce_off, NONCE_LEN);
  a->nonce = j->o.nonce;
  memcpy(a->tag, j->data + n - TAG_LEN, TAG_LEN);
  a->in = j->data + j->header_len;
  a->pl = bucket;
  return 1;
}

static void get_execute(file_job *j) {
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
  if (j->crypt == CRYPT_OPEN && !j->err && aim_open(j)) j->verified = fs_aead_run(&j->o.a, 1);
}

static void file_execute(napi_env env, void *data) {
  (void)env;
  file_job *j = data;
  if (j->write)
    put_execute(j);
  else
    get_execute(j);
}

static void file_complete(napi_env env, napi_status status, void *data) {
  file_job *j = data;
  napi_value cb, argv[3], undef;
  napi_get_reference_value(env, j->cb_ref, &cb);
  int e = status == napi_cancelled ? ECANCELED : j->err;
  napi_create_int32(env, e, &argv[0]);
  napi_create_double(env, (double)j->done, &argv[1]);
  napi_get_boolean(env, j->verified, &argv[2]);
  napi_get_undefined(env, &undef);
  for (int i = 0; i < 4; i++)
    if (j->refs[i]) napi_delete_reference(env, j->refs[i]);
  napi_delete_reference(env, j->cb_ref);
  napi_delete_async_work(env, j->work);
  size_t argn = j->crypt == CRYPT_OPEN ? 3 : 2;
  fs_aead_disown(&j->o);
  free(j->path);
  free(j);
  napi_call_function(env, undef, cb, argn, argv, NULL);
}

static int size_arg(napi_env env, napi_value v, size_t *out, const char *what) {
  uint32_t x;
  if (napi_get_value_uint32(env, v, &x) != napi_ok) return fs_throw_type(env, what);
  *out = x;
  return 1;
}

static napi_value file_io(napi_env env, napi_callback_info info, int write, int crypt) {
  static const char *const usage[2][3] = {
      {"getFile(path, buf, cb)", NULL,
       "getOpenFile(path, buf, epochKey, id, info, aadRest, headerLen, nonceOff, trailerLen, out, "
       "tail, cb)"},
      {"putFile(path, buf, durable, cb)", "sealPutFile(path, durable, ...seal arguments, size, cb)",
       NULL}};
  const size_t wants[2][3] = {{3, 0, 12}, {4, 14, 0}};
  size_t want = wants[write][crypt];
  size_t argc = 14;
  napi_value argv[14];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != want) {
    fs_throw_type(env, usage[write][crypt]);
    return NULL;
  }
  size_t plen;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &plen) != napi_ok || plen == 0 ||
      plen > 4095) {
    fs_throw_type(env, "path must be a non-empty string");
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
  j->write = write;
  j->crypt = crypt;
  /* Where the bulk buffer is: putFile/getFile/getOpenFile argv[1], sealPutFile out = argv[10]. */
  napi_value bulk = crypt == CRYPT_SEAL ? argv[10] : argv[1];
  bool durable = false;
  int ok = fs_bytes_arg(env, bulk, -1, &j->data, &j->len, "buf must be a Buffer");
  if (ok && write) {
    ok = napi_get_value_bool(env, argv[crypt == CRYPT_SEAL ? 1 : 2], &durable) == napi_ok ||
         fs_throw_type(env, "durable must be a boolean");
  }
  if (ok && crypt == CRYPT_SEAL) {
    size_t size = 0;
    ok = fs_parse_aead(env, argv + 2, 0, &j->o.a) &&
         size_arg(env, argv[12], &size, "size must be a uint32");
    if (ok && (size > j->len || (size_t)(j->o.a.out - j->data) + j->o.a.pl + j->o.a.pad +
                                        j->o.a.tl + TAG_LEN > size))
      ok = fs_throw_type(env, "size must cover the sealed object and fit out");
    if (ok) {
      fs_aead_own(&j->o, 1);
      j->len = size;
      napi_create_reference(env, argv[7], 1, &j->refs[1]); /* payload */
    }
  }
  if (ok && crypt == CRYPT_OPEN) {
    aead_args *a = &j->o.a;
    unsigned char *ek, *id, *inf, *rest;
    size_t ekl, idl, restl;
    ok = fs_bytes_arg(env, argv[2], KEY_LEN, &ek, &ekl, "epoch key must be a 32-byte Buffer") &&
         fs_bytes_arg(env, argv[3], ID_LEN, &id, &idl, "id must be a 16-byte Buffer") &&
         fs_bytes_arg(env, argv[4], -1, &inf, &a->infol, "info must be a Buffer") &&
         fs_bytes_arg(env, argv[5], -1, &rest, &restl, "aadRest must be a Buffer") &&
         size_arg(env, argv[6], &j->header_len, "headerLen must be a uint32") &&
         size_arg(env, argv[7], &j->nonce_off, "nonceOff must be a uint32") &&
         size_arg(env, argv[8], &j->trailer_len, "trailerLen must be a uint32") &&
         fs_bytes_arg(env, argv[9], -1, &a->out, &j->out_cap, "out must be a Buffer") &&
         fs_bytes_arg(env, argv[10], -1, &a->tail, &a->tl, "tail must be a Buffer");
    if (ok && (a->infol > MAX_INFO || restl > MAX_AAD || a->tl != j->trailer_len))
      ok = fs_throw_type(env, "info or aadRest too long, or tail is not trailerLen bytes");
    if (ok) {
      a->ek = ek;
      a->id = id;
      a->info = inf;
      a->aad = rest;
      a->aadl = restl;
      a->nonce = NULL; /* taken from the object by aim_open */
      fs_aead_own(&j->o, 0);
      napi_create_reference(env, argv[9], 1, &j->refs[1]);
      napi_create_reference(env, argv[10], 1, &j->refs[2]);
    }
  }
  if (!ok) {
    free(j);
    free(path);
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], path, plen + 1, &plen);
  j->path = path;
  j->durable = durable;
  napi_value name;
  napi_create_string_utf8(env, write ? "supernet.putFile" : "supernet.getFile", NAPI_AUTO_LENGTH,
                          &name);
  napi_create_reference(env, bulk, 1, &j->refs[0]);
  napi_create_reference(env, cb, 1, &j->cb_ref);
  napi_create_async_work(env, NULL, name, file_execute, file_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return NULL;
}

napi_value fs_put_file(napi_env env, napi_callback_info info) {
  return file_io(env, info, 1, CRYPT_NONE);
}
napi_value fs_get_file(napi_env env, napi_callback_info info) {
  return file_io(env, info, 0, CRYPT_NONE);
}
napi_value fs_seal_put_file(napi_env env, napi_callback_info info) {
  return file_io(env, info, 1, CRYPT_SEAL);
}
napi_value fs_get_open_file(napi_env env, napi_callback_info info) {
  return file_io(env, info, 0, CRYPT_OPEN);
}
