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
 */
#include <node_api.h>
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
  napi_value v;
  napi_create_uint32(env, 1, &v);
  napi_set_named_property(env, exports, "version", v);
  return exports;
}
