/*
 * Bulk AEAD of the encrypting filesystem's objects (docs/storage.md, "Sealed
 * object" and "Speed"), for fs/format.ts. Computes exactly what the
 * node:crypto path computes -- per-object key HKDF-SHA256(ikm = epoch key,
 * salt = object id, info), AES-256-GCM with the object's nonce and AAD -- but
 * writes into the caller's buffers: node:crypto allocates a fresh output
 * buffer per update, and on a virtual machine the page faults of that memory
 * cost more than the AES itself.
 *
 * seal/open run on the calling thread with a per-environment context (so
 * worker threads may load the addon too). sealAsync/openAsync do the same
 * work as a libuv threadpool job with a context of their own: the mount
 * daemon answers the kernel on one JS thread, and a 256 KiB chunk sealed
 * there is time in which no other request is served. The small inputs (key,
 * id, info, nonce, AAD, sealed tail) are copied into the job, so the caller
 * may reuse or wipe them at once; the large buffers stay referenced until
 * the callback.
 *
 * It uses the OpenSSL that Node is built with and exports (headers from
 * Node's include folder), so it links against nothing else.
 */
#include "fsnative.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Zero padding is encrypted from this read-only block, a piece at a time. */
#define ZERO_PIECE 65536
static const unsigned char zeros[ZERO_PIECE];

/* The addon's exports are versioned: fs/native/aead.ts loads only its own. */
#define ADDON_VERSION 4

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

int fs_throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return 0;
}

int fs_bytes_arg(napi_env env, napi_value v, long want, unsigned char **p, size_t *len,
                 const char *what) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return fs_throw_type(env, what);
  void *data;
  if (napi_get_buffer_info(env, v, &data, len) != napi_ok) return fs_throw_type(env, what);
  if (want >= 0 && *len != (size_t)want) return fs_throw_type(env, what);
  *p = data;
  return 1;
}

int fs_fn_arg(napi_env env, napi_value v, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_function) return fs_throw_type(env, what);
  return 1;
}

static int u32_arg(napi_env env, napi_value v, uint32_t *out, const char *what) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) return fs_throw_type(env, what);
  return 1;
}

/* HKDF-SHA256 with a 32-byte output (RFC 5869): one Extract, one Expand block. */
static int object_key(const unsigned char *ikm, const unsigned char *salt, const unsigned char *info,
                      size_t info_len, unsigned char out[KEY_LEN]) {
  unsigned char prk[SHA256_LEN];
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), salt, ID_LEN, ikm, KEY_LEN, prk, &n) || n != SHA256_LEN) return 0;
  unsigned char block[MAX_INFO + 1];
  if (info_len > MAX_INFO) return 0;
  memcpy(block, info, info_len);
  block[info_len] = 0x01;
  int ok = HMAC(EVP_sha256(), prk, SHA256_LEN, block, info_len + 1, out, &n) && n == SHA256_LEN;
  OPENSSL_cleanse(prk, sizeof prk);
  return ok;
}

/* Encrypts per `a` into a->out, the tag right after the ciphertext. 1 = done. */
static int seal_core(EVP_CIPHER_CTX *c, const aead_args *a) {
  unsigned char key[KEY_LEN];
  int ok = object_key(a->ek, a->id, a->info, a->infol, key);
  int n = 0;
  unsigned char *o = a->out;
  ok = ok && EVP_CIPHER_CTX_reset(c) &&
       EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) &&
       EVP_EncryptInit_ex(c, NULL, NULL, key, a->nonce) &&
       EVP_EncryptUpdate(c, NULL, &n, a->aad, (int)a->aadl);
  OPENSSL_cleanse(key, sizeof key);
  if (ok && a->pl) {
    ok = EVP_EncryptUpdate(c, o, &n, a->in, (int)a->pl);
    o += n;
  }
  for (uint32_t left = a->pad; ok && left > 0;) {
    int k = left > ZERO_PIECE ? ZERO_PIECE : (int)left;
    ok = EVP_EncryptUpdate(c, o, &n, zeros, k);
    o += n;
    left -= (uint32_t)k;
  }
  if (ok && a->tl) {
    ok = EVP_EncryptUpdate(c, o, &n, a->tail, (int)a->tl);
    o += n;
  }
  ok = ok && EVP_EncryptFinal_ex(c, o, &n);
  o += ok ? n : 0;
  return ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, o);
}

/* Decrypts and verifies per `a`; 1 = authentic. Anything else wipes both outputs. */
static int open_core(EVP_CIPHER_CTX *c, aead_args *a) {
  unsigned char key[KEY_LEN];
  int ok = object_key(a->ek, a->id, a->info, a->infol, key);
  int n = 0;
  ok = ok && EVP_CIPHER_CTX_reset(c) &&
       EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) &&
       EVP_DecryptInit_ex(c, NULL, NULL, key, a->nonce) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, a->tag) &&
       EVP_DecryptUpdate(c, NULL, &n, a->aad, (int)a->aadl);
  OPENSSL_cleanse(key, sizeof key);
  if (ok && a->pl) ok = EVP_DecryptUpdate(c, a->out, &n, a->in, (int)a->pl) && (size_t)n == a->pl;
  if (ok && a->tl)
    ok = EVP_DecryptUpdate(c, a->tail, &n, a->in + a->pl, (int)a->tl) && (size_t)n == a->tl;
  unsigned char fin[16];
  int verified = ok && EVP_DecryptFinal_ex(c, fin, &n) > 0;
  if (!verified) {
    OPENSSL_cleanse(a->out, a->pl);
    OPENSSL_cleanse(a->tail, a->tl);
  }
  return verified;
}

/*
 * Reads seal's arguments (epochKey, id, info, nonce, aad, payload, pad, tail,
 * out, off) or open's (epochKey, id, info, nonce, aad, ct, tag, out, tail).
 * 0 after a throw.
 */
int fs_parse_aead(napi_env env, napi_value *argv, int opening, aead_args *a) {
  unsigned char *ek, *id, *inf, *nonce, *aad, *in, *out, *tail;
  size_t ekl, idl, nl, inl, outl;
  if (!fs_bytes_arg(env, argv[0], KEY_LEN, &ek, &ekl, "epoch key must be a 32-byte Buffer") ||
      !fs_bytes_arg(env, argv[1], ID_LEN, &id, &idl, "id must be a 16-byte Buffer") ||
      !fs_bytes_arg(env, argv[2], -1, &inf, &a->infol, "info must be a Buffer") ||
      !fs_bytes_arg(env, argv[3], NONCE_LEN, &nonce, &nl, "nonce must be a 12-byte Buffer") ||
      !fs_bytes_arg(env, argv[4], -1, &aad, &a->aadl, "aad must be a Buffer") ||
      !fs_bytes_arg(env, argv[5], -1, &in, &inl, opening ? "ct must be a Buffer" : "payload must be a Buffer"))
    return 0;
  if (a->infol > MAX_INFO || a->aadl > MAX_AAD) return fs_throw_type(env, "info or aad is too long");
  a->ek = ek;
  a->id = id;
  a->info = inf;
  a->nonce = nonce;
  a->aad = aad;
  a->in = in;
  if (opening) {
    unsigned char *tag;
    size_t tagl;
    if (!fs_bytes_arg(env, argv[6], TAG_LEN, &tag, &tagl, "tag must be a 16-byte Buffer") ||
        !fs_bytes_arg(env, argv[7], -1, &out, &outl, "out must be a Buffer") ||
        !fs_bytes_arg(env, argv[8], -1, &tail, &a->tl, "tail must be a Buffer"))
      return 0;
    if (inl != outl + a->tl || inl > INT32_MAX)
      return fs_throw_type(env, "ct must be exactly out.length + tail.length bytes");
    memcpy(a->tag, tag, TAG_LEN);
    a->pl = outl;
    a->out = out;
    a->tail = tail;
    a->pad = 0;
    return 1;
  }
  uint32_t off;
  if (!u32_arg(env, argv[6], &a->pad, "pad must be a uint32") ||
      !fs_bytes_arg(env, argv[7], -1, &tail, &a->tl, "tail must be a Buffer") ||
      !fs_bytes_arg(env, argv[8], -1, &out, &outl, "out must be a Buffer") ||
      !u32_arg(env, argv[9], &off, "off must be a uint32"))
    return 0;
  uint64_t need = (uint64_t)off + inl + a->pad + a->tl + TAG_LEN;
  if (need > outl || inl > INT32_MAX || a->tl > MAX_TAIL)
    return fs_throw_type(env, "out is too small for the sealed object");
  a->pl = inl;
  a->tail = tail;
  a->out = out + off;
  return 1;
}

static aead_state *state(napi_env env) {
  aead_state *s = NULL;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok) return NULL;
  return s;
}

/*
 * seal(epochKey, id, info, nonce, aad, payload, pad, tail, out, off)
 *   Encrypts payload || pad zero bytes || tail into out[off...], then the
 *   16-byte tag right after the ciphertext.
 * open(epochKey, id, info, nonce, aad, ct, tag, out, tail) -> boolean
 *   Decrypts ct into out (its first out.length bytes) and tail (the rest),
 *   and verifies the tag. On failure both are wiped and false is returned.
 */
static napi_value aead_sync(napi_env env, napi_callback_info info, int opening) {
  size_t want = opening ? 9 : 10;
  size_t argc = 10;
  napi_value argv[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want) {
    fs_throw_type(env, opening ? "open needs 9 arguments" : "seal needs 10 arguments");
    return NULL;
  }
  aead_args a;
  if (!fs_parse_aead(env, argv, opening, &a)) return NULL;
  aead_state *s = state(env);
  int ok = s && (opening ? open_core(s->ctx, &a) : seal_core(s->ctx, &a));
  if (opening) {
    napi_value r;
    napi_get_boolean(env, ok, &r);
    return r;
  }
  if (!ok) napi_throw_error(env, "ERR_CRYPTO", "AES-256-GCM seal failed");
  return NULL;
}

static napi_value seal(napi_env env, napi_callback_info info) { return aead_sync(env, info, 0); }
static napi_value open_(napi_env env, napi_callback_info info) { return aead_sync(env, info, 1); }

/* ---- the same on the libuv threadpool ------------------------------------ */

void fs_aead_own(aead_owned *o, int copy_tail) {
  aead_args *a = &o->a;
  memcpy(o->ek, a->ek, KEY_LEN);
  memcpy(o->id, a->id, ID_LEN);
  if (a->nonce) memcpy(o->nonce, a->nonce, NONCE_LEN);
  memcpy(o->info, a->info, a->infol);
  memcpy(o->aad, a->aad, a->aadl);
  a->ek = o->ek;
  a->id = o->id;
  a->nonce = o->nonce;
  a->info = o->info;
  a->aad = o->aad;
  if (copy_tail) {
    memcpy(o->tail, a->tail, a->tl);
    a->tail = o->tail;
  }
}

void fs_aead_disown(aead_owned *o) { OPENSSL_cleanse(o->ek, sizeof o->ek); }

int fs_aead_run(aead_args *a, int opening) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int ok = c && (opening ? open_core(c, a) : seal_core(c, a));
  if (c) EVP_CIPHER_CTX_free(c);
  return ok;
}

typedef struct {
  napi_async_work work;
  /* Keeps the large buffers (in, out, open's tail) alive until the callback. */
  napi_ref refs[3];
  napi_ref cb_ref;
  int opening;
  int ok;
  aead_owned o;
} aead_job;

static void job_execute(napi_env env, void *data) {
  (void)env;
  aead_job *j = data;
  j->ok = fs_aead_run(&j->o.a, j->opening);
}

static void job_complete(napi_env env, napi_status status, void *data) {
  aead_job *j = data;
  napi_value cb, arg, undef;
  napi_get_reference_value(env, j->cb_ref, &cb);
  napi_get_boolean(env, status == napi_ok && j->ok, &arg);
  napi_get_undefined(env, &undef);
  for (int i = 0; i < 3; i++)
    if (j->refs[i]) napi_delete_reference(env, j->refs[i]);
  napi_delete_reference(env, j->cb_ref);
  napi_delete_async_work(env, j->work);
  fs_aead_disown(&j->o);
  free(j);
  napi_call_function(env, undef, cb, 1, &arg, NULL);
}

/* sealAsync(...seal's 10 arguments, cb(ok)) / openAsync(...open's 9, cb(ok)) */
static napi_value aead_async(napi_env env, napi_callback_info info, int opening) {
  size_t want = opening ? 10 : 11;
  size_t argc = 11;
  napi_value argv[11];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want) {
    fs_throw_type(env, opening ? "openAsync needs 10 arguments" : "sealAsync needs 11 arguments");
    return NULL;
  }
  napi_value cb = argv[want - 1];
  if (!fs_fn_arg(env, cb, "cb must be a function")) return NULL;
  aead_job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ERR_MEMORY", "out of memory");
    return NULL;
  }
  if (!fs_parse_aead(env, argv, opening, &j->o.a)) {
    free(j);
    return NULL;
  }
  /* Seal's tail is an input (copied); open's is an output (referenced). */
  fs_aead_own(&j->o, !opening);
  j->opening = opening;
  /* in = argv[5], out = argv[7] (open) or argv[8] (seal), open's tail = argv[8]. */
  napi_create_reference(env, argv[5], 1, &j->refs[0]);
  napi_create_reference(env, argv[opening ? 7 : 8], 1, &j->refs[1]);
  if (opening) napi_create_reference(env, argv[8], 1, &j->refs[2]);
  napi_create_reference(env, cb, 1, &j->cb_ref);
  napi_value name;
  napi_create_string_utf8(env, opening ? "supernet.openAsync" : "supernet.sealAsync",
                          NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, job_execute, job_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return NULL;
}

static napi_value seal_async(napi_env env, napi_callback_info info) { return aead_async(env, info, 0); }
static napi_value open_async(napi_env env, napi_callback_info info) { return aead_async(env, info, 1); }

NAPI_MODULE_INIT() {
  aead_state *s = calloc(1, sizeof *s);
  if (!s || !(s->ctx = EVP_CIPHER_CTX_new())) {
    free(s);
    napi_throw_error(env, "ERR_CRYPTO", "cannot allocate a cipher context");
    return NULL;
  }
  napi_set_instance_data(env, s, state_free, NULL);
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"seal", seal},           {"open", open_},         {"sealAsync", seal_async},
             {"openAsync", open_async}, {"putFile", fs_put_file}, {"getFile", fs_get_file},
             {"sealPutFile", fs_seal_put_file}, {"getOpenFile", fs_get_open_file}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, fns[i].name, fn);
  }
  napi_value v;
  napi_create_uint32(env, ADDON_VERSION, &v);
  napi_set_named_property(env, exports, "version", v);
  return exports;
}
