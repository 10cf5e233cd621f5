/*
 * What the files of the filesystem's native addon share (binding.gyp builds
 * them into one module, supernet_fs.node; aead.c registers the exports).
 */
#ifndef SUPERNET_FSNATIVE_H
#define SUPERNET_FSNATIVE_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_LEN 32
#define ID_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define SHA256_LEN 32
/* Bounds of the small inputs a job copies (the format uses 21, 57 and 4 bytes). */
#define MAX_INFO 256
#define MAX_AAD 256
#define MAX_TAIL 64

/* What one seal or open works on: pointers into the caller's buffers. */
typedef struct {
  const unsigned char *ek, *id, *info, *nonce, *aad;
  size_t infol, aadl;
  /* seal: payload (pl bytes), then pad zero bytes, then tail (tl bytes) -> out (+ tag).
   * open: ct (pl + tl bytes) -> out (pl bytes) and tail (tl bytes), checked against tag. */
  const unsigned char *in;
  size_t pl;
  uint32_t pad;
  unsigned char *tail;
  size_t tl;
  unsigned char *out;
  unsigned char tag[TAG_LEN];
} aead_args;

/* aead_args whose small inputs are copies held here (for a job on another thread). */
typedef struct {
  aead_args a;
  unsigned char ek[KEY_LEN], id[ID_LEN], nonce[NONCE_LEN];
  unsigned char info[MAX_INFO], aad[MAX_AAD], tail[MAX_TAIL];
} aead_owned;

/*
 * Reads seal's arguments (epochKey, id, info, nonce, aad, payload, pad, tail,
 * out, off) or open's (epochKey, id, info, nonce, aad, ct, tag, out, tail)
 * from argv. 0 after a throw.
 */
int fs_parse_aead(napi_env env, napi_value *argv, int opening, aead_args *a);
/* Copies o->a's key, id, nonce (unless NULL), info, AAD (and the tail when asked) into o. */
void fs_aead_own(aead_owned *o, int copy_tail);
/* Wipes the copied key. */
void fs_aead_disown(aead_owned *o);
/* Seals or opens (1 = done / authentic) with a context of its own: safe on any thread. */
int fs_aead_run(aead_args *a, int opening);

/* Throws a TypeError with code ERR_INVALID_ARG; returns 0 for `return throw_type(...)` chains. */
int fs_throw_type(napi_env env, const char *msg);
/* Buffer argument as bytes; `want` >= 0 demands that length. 0 (and a throw) when it is not. */
int fs_bytes_arg(napi_env env, napi_value v, long want, unsigned char **p, size_t *len,
                 const char *what);
/* 0 (and a throw) when `v` is not a function. */
int fs_fn_arg(napi_env env, napi_value v, const char *what);

/* fileio.c: putFile, getFile, sealPutFile, getOpenFile (see there). */
napi_value fs_put_file(napi_env env, napi_callback_info info);
napi_value fs_get_file(napi_env env, napi_callback_info info);
napi_value fs_seal_put_file(napi_env env, napi_callback_info info);
napi_value fs_get_open_file(napi_env env, napi_callback_info info);

#endif
