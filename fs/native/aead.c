/*
 * Bulk AEAD of the encrypting filesystem's objects (docs/storage.md, "Sealed
 * object" and "Speed"), for fs/format.ts. Computes exactly what the
 * node:crypto path computes -- per-object key HKDF-SHA256(ikm = epoch key,
 * salt = object id, info), AES-256-GCM with the object's nonce and AAD -- but
 * writes into the caller's buffers: node:crypto allocates a fresh output
 * buffer per update, and on a virtual machine the page faults of that memory
 * cost more than the AES itself.
 *
 * It uses the OpenSSL that Node is built with and exports (headers from
 * Node's include folder), so it links against nothing else. Everything is
 * synchronous and touches only its arguments and per-environment state, so
 * worker threads may load it too.
 *
 * It also offers whole-object file I/O for fs/store.ts (putFile, getFile):
 * open + write/read loop (+ fdatasync) + close as ONE libuv threadpool job
 * instead of three or four, each of which costs the event loop a crossing, a
 * promise and a wake-up -- at one object per 256 KiB, that was a third of
 * the mount daemon's busy time during a sequential write (docs/storage.md,
 * "Speed").
 */
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 32
#define ID_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define SHA256_LEN 32
/* Zero padding is encrypted from this read-only block, a piece at a time. */
#define ZERO_PIECE 65536
static const unsigned char zeros[ZERO_PIECE];

typedef struct {
  EVP_CIPHER_CTX *ctx;
} aead_state;

static void state_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_state *s = data;
  if (s->ctx) EVP_CIPHER_CTX_free(s->ctx);
  free(s);
}

static int throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return 0;
}

/* Buffer (or any TypedArray) argument `i` as bytes; `want` >= 0 demands that length. */
static int bytes_arg(napi_env env, napi_value v, long want, unsigned char **p, size_t *len,
                     const char *what) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return throw_type(env, what);
  void *data;
  if (napi_get_buffer_info(env, v, &data, len) != napi_ok) return throw_type(env, what);
  if (want >= 0 && *len != (size_t)want) return throw_type(env, what);
  *p = data;
  return 1;
}

static int u32_arg(napi_env env, napi_value v, uint32_t *out, const char *what) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) return throw_type(env, what);
  return 1;
}

/* HKDF-SHA256 with a 32-byte output (RFC 5869): one Extract, one Expand block. */
static int object_key(const unsigned char *ikm, const unsigned char *salt, const unsigned char *info,
                      size_t info_len, unsigned char out[KEY_LEN]) {
  unsigned char prk[SHA256_LEN];
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), salt, ID_LEN, ikm, KEY_LEN, prk, &n) || n != SHA256_LEN) return 0;
  unsigned char block[256 + 1];
  if (info_len > 256) return 0;
  memcpy(block, info, info_len);
  block[info_len] = 0x01;
  int ok = HMAC(EVP_sha256(), prk, SHA256_LEN, block, info_len + 1, out, &n) && n == SHA256_LEN;
  OPENSSL_cleanse(prk, sizeof prk);
  return ok;
}

static aead_state *state(napi_env env) {
  aead_state *s = NULL;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok) return NULL;
  return s;
}

/*
 * seal(epochKey, id, info, nonce, aad, payload, pad, tail, out, off)
 * Encrypts payload || pad zero bytes || tail into out[off...], then the
 * 16-byte tag right after the ciphertext.
 */
static napi_value seal(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 10) {
    throw_type(env, "seal needs 10 arguments");
    return NULL;
  }
  unsigned char *ek, *id, *inf, *nonce, *aad, *payload, *tail, *out;
  size_t ekl, idl, infl, nl, aadl, pl, tl, outl;
  uint32_t pad, off;
  if (!bytes_arg(env, argv[0], KEY_LEN, &ek, &ekl, "epoch key must be a 32-byte Buffer") ||
      !bytes_arg(env, argv[1], ID_LEN, &id, &idl, "id must be a 16-byte Buffer") ||
      !bytes_arg(env, argv[2], -1, &inf, &infl, "info must be a Buffer") ||
      !bytes_arg(env, argv[3], NONCE_LEN, &nonce, &nl, "nonce must be a 12-byte Buffer") ||
      !bytes_arg(env, argv[4], -1, &aad, &aadl, "aad must be a Buffer") ||
      !bytes_arg(env, argv[5], -1, &payload, &pl, "payload must be a Buffer") ||
      !u32_arg(env, argv[6], &pad, "pad must be a uint32") ||
      !bytes_arg(env, argv[7], -1, &tail, &tl, "tail must be a Buffer") ||
      !bytes_arg(env, argv[8], -1, &out, &outl, "out must be a Buffer") ||
      !u32_arg(env, argv[9], &off, "off must be a uint32"))
    return NULL;
  uint64_t need = (uint64_t)off + pl + pad + tl + TAG_LEN;
  if (need > outl || pl > INT32_MAX || tl > INT32_MAX || aadl > INT32_MAX) {
    throw_type(env, "out is too small for the sealed object");
    return NULL;
  }
  aead_state *s = state(env);
  unsigned char key[KEY_LEN];
  int ok = s && object_key(ek, id, inf, infl, key);
  EVP_CIPHER_CTX *c = ok ? s->ctx : NULL;
  int n = 0;
  unsigned char *o = out + off;
  ok = ok && EVP_CIPHER_CTX_reset(c) &&
       EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) &&
       EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) &&
       EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadl);
  OPENSSL_cleanse(key, sizeof key);
  if (ok && pl) {
    ok = EVP_EncryptUpdate(c, o, &n, payload, (int)pl);
    o += n;
  }
  for (uint32_t left = pad; ok && left > 0;) {
    int k = left > ZERO_PIECE ? ZERO_PIECE : (int)left;
    ok = EVP_EncryptUpdate(c, o, &n, zeros, k);
    o += n;
    left -= (uint32_t)k;
  }
  if (ok && tl) {
    ok = EVP_EncryptUpdate(c, o, &n, tail, (int)tl);
    o += n;
  }
  ok = ok && EVP_EncryptFinal_ex(c, o, &n);
  o += ok ? n : 0;
  ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, o);
  if (!ok) {
    napi_throw_error(env, "ERR_CRYPTO", "AES-256-GCM seal failed");
    return NULL;
  }
  return NULL;
}

/*
 * open(epochKey, id, info, nonce, aad, ct, tag, out, tail) -> boolean
 * Decrypts ct into out (its first out.length bytes) and tail (the rest),
 * and verifies the tag. On failure both are wiped and false is returned.
 */
static napi_value open_(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 9) {
    throw_type(env, "open needs 9 arguments");
    return NULL;
  }
  unsigned char *ek, *id, *inf, *nonce, *aad, *ct, *tag, *out, *tail;
  size_t ekl, idl, infl, nl, aadl, ctl, tagl, outl, tl;
  if (!bytes_arg(env, argv[0], KEY_LEN, &ek, &ekl, "epoch key must be a 32-byte Buffer") ||
      !bytes_arg(env, argv[1], ID_LEN, &id, &idl, "id must be a 16-byte Buffer") ||
      !bytes_arg(env, argv[2], -1, &inf, &infl, "info must be a Buffer") ||
      !bytes_arg(env, argv[3], NONCE_LEN, &nonce, &nl, "nonce must be a 12-byte Buffer") ||
      !bytes_arg(env, argv[4], -1, &aad, &aadl, "aad must be a Buffer") ||
      !bytes_arg(env, argv[5], -1, &ct, &ctl, "ct must be a Buffer") ||
      !bytes_arg(env, argv[6], TAG_LEN, &tag, &tagl, "tag must be a 16-byte Buffer") ||
      !bytes_arg(env, argv[7], -1, &out, &outl, "out must be a Buffer") ||
      !bytes_arg(env, argv[8], -1, &tail, &tl, "tail must be a Buffer"))
    return NULL;
  if (ctl != outl + tl || ctl > INT32_MAX || aadl > INT32_MAX) {
    throw_type(env, "ct must be exactly out.length + tail.length bytes");
    return NULL;
  }
  aead_state *s = state(env);
  unsigned char key[KEY_LEN];
  unsigned char t[TAG_LEN];
  memcpy(t, tag, TAG_LEN);
  int ok = s && object_key(ek, id, inf, infl, key);
  EVP_CIPHER_CTX *c = ok ? s->ctx : NULL;
  int n = 0;
  ok = ok && EVP_CIPHER_CTX_reset(c) &&
       EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) &&
       EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, t) &&
       EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadl);
  OPENSSL_cleanse(key, sizeof key);
  if (ok && outl) ok = EVP_DecryptUpdate(c, out, &n, ct, (int)outl) && (size_t)n == outl;
  if (ok && tl) ok = EVP_DecryptUpdate(c, tail, &n, ct + outl, (int)tl) && (size_t)n == tl;
  unsigned char fin[16];
  int verified = ok && EVP_DecryptFinal_ex(c, fin, &n) > 0;
  if (!verified) {
    OPENSSL_cleanse(out, outl);
    OPENSSL_cleanse(tail, tl);
  }
  napi_value r;
  napi_get_boolean(env, verified, &r);
  return r;
}

/* ---- whole-object file I/O on the libuv threadpool ----------------------- */

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
    throw_type(env, write ? "putFile(path, buf, durable, cb)" : "getFile(path, buf, cb)");
    return NULL;
  }
  size_t plen;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &plen) != napi_ok || plen == 0 ||
      plen > 4095) {
    throw_type(env, "path must be a non-empty string");
    return NULL;
  }
  unsigned char *data;
  size_t len;
  if (!bytes_arg(env, argv[1], -1, &data, &len, "buf must be a Buffer")) return NULL;
  bool durable = false;
  if (write && napi_get_value_bool(env, argv[2], &durable) != napi_ok) {
    throw_type(env, "durable must be a boolean");
    return NULL;
  }
  napi_value cb = argv[want - 1];
  napi_valuetype t;
  if (napi_typeof(env, cb, &t) != napi_ok || t != napi_function) {
    throw_type(env, "cb must be a function");
    return NULL;
  }
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

static napi_value put_file(napi_env env, napi_callback_info info) { return file_io(env, info, 1); }
static napi_value get_file(napi_env env, napi_callback_info info) { return file_io(env, info, 0); }

NAPI_MODULE_INIT() {
  aead_state *s = calloc(1, sizeof *s);
  if (!s || !(s->ctx = EVP_CIPHER_CTX_new())) {
    free(s);
    napi_throw_error(env, "ERR_CRYPTO", "cannot allocate a cipher context");
    return NULL;
  }
  napi_set_instance_data(env, s, state_free, NULL);
  napi_value fn;
  napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal, NULL, &fn);
  napi_set_named_property(env, exports, "seal", fn);
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_, NULL, &fn);
  napi_set_named_property(env, exports, "open", fn);
  napi_create_function(env, "putFile", NAPI_AUTO_LENGTH, put_file, NULL, &fn);
  napi_set_named_property(env, exports, "putFile", fn);
  napi_create_function(env, "getFile", NAPI_AUTO_LENGTH, get_file, NULL, &fn);
  napi_set_named_property(env, exports, "getFile", fn);
  napi_value v;
  napi_create_uint32(env, 2, &v);
  napi_set_named_property(env, exports, "version", v);
  return exports;
}
