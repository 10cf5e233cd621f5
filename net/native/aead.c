/*
 * aead.c: the SNSL packet AEAD (docs/protocol.md section 2, "Implementation:
 * where the AEAD runs"), for net/packet-aead.ts.
 *
 * Why it exists: node:crypto builds a new cipher context per packet
 * (createCipheriv: key schedule, GHASH table, object allocation) and returns
 * a fresh Buffer from every update(); at ~1400-byte packets that setup costs
 * more than the AES itself (design brief section 4, "Measured packet path":
 * ~7.5 us per packet). Here one object per sender subkey holds two
 * preinitialised EVP_CIPHER_CTX (one sealing, one opening) whose key schedule
 * was done once; per packet only the 12-byte nonce is set.
 *
 * The packet layout is net/wire.ts's: a 36-byte header that is the whole
 * AAD, nonce = header[24..36) (session u32 || sequence u64), then the
 * ciphertext and the 16-byte tag. The header is written by the caller (the
 * Sealer owns the sequence counter); this file only reads it.
 *
 * It uses the OpenSSL that Node is built with and exports (headers from
 * Node's include folder), so it links against nothing else. Everything is
 * synchronous and touches only its arguments, so worker threads may load it.
 */
#include "sn.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Kept in sync with net/wire.ts (HEADER_LEN, OFF_SESSION, TAG_LEN, NONCE_LEN). */
#define SN_HEADER_LEN 36
#define SN_OFF_NONCE 24
#define SN_NONCE_LEN 12
#define SN_TAG_LEN 16
#define SN_KEY_LEN 32
/* Largest body: a UDP/IPv4 payload of 65507 bytes minus the SNSL overhead. */
#define SN_MAX_BODY (65507 - SN_HEADER_LEN - SN_TAG_LEN)

/* Marks packet-AEAD externals, so no other object is ever cast to one. */
static const napi_type_tag SN_AEAD_TAG = {0x5375706572a3adULL, 0x7061636b65740001ULL};

typedef struct {
  EVP_CIPHER_CTX *seal; /* NULL once wiped */
  EVP_CIPHER_CTX *open;
} sn_aead;

/* Frees both contexts; EVP_CIPHER_CTX_free cleanses the key schedule it held. */
static void aead_wipe(sn_aead *a) {
  if (a->seal) EVP_CIPHER_CTX_free(a->seal);
  if (a->open) EVP_CIPHER_CTX_free(a->open);
  a->seal = a->open = NULL;
}

static void aead_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_wipe(data);
  free(data);
}

/* The sn_aead behind argument v, or NULL after throwing (wrong object or wiped). */
static sn_aead *aead_unwrap(napi_env env, napi_value v) {
  bool ok = false;
  void *p = NULL;
  if (napi_check_object_type_tag(env, v, &SN_AEAD_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &p) != napi_ok || !p) {
    sn_throw_type(env, "not a packet AEAD handle");
    return NULL;
  }
  if (!((sn_aead *)p)->seal) {
    sn_throw(env, "ERR_AEAD_WIPED", "packet AEAD key was wiped");
    return NULL;
  }
  return p;
}

/* aeadCreate(subkey: 32-byte Buffer) -> handle */
static napi_value js_aead_create(napi_env env, napi_callback_info info) {
  size_t argc = 1, klen;
  napi_value argv[1], external = NULL;
  uint8_t *key;
  sn_aead *a;
  int ok;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    sn_throw_type(env, "aeadCreate(subkey)");
    return NULL;
  }
  if (sn_get_bytes(env, argv[0], "subkey", &key, &klen) < 0) return NULL;
  if (klen != SN_KEY_LEN) {
    sn_throw_range(env, "aeadCreate: subkey must be 32 bytes");
    return NULL;
  }
  a = calloc(1, sizeof *a);
  if (!a || !(a->seal = EVP_CIPHER_CTX_new()) || !(a->open = EVP_CIPHER_CTX_new())) {
    if (a) aead_wipe(a);
    free(a);
    sn_throw(env, "ENOMEM", "aeadCreate: out of memory");
    return NULL;
  }
  /* Key schedule once; the nonce given here is a placeholder replaced per packet. */
  static const uint8_t zero_nonce[SN_NONCE_LEN];
  ok = EVP_EncryptInit_ex(a->seal, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(a->seal, EVP_CTRL_GCM_SET_IVLEN, SN_NONCE_LEN, NULL) &&
       EVP_EncryptInit_ex(a->seal, NULL, NULL, key, zero_nonce) &&
       EVP_DecryptInit_ex(a->open, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(a->open, EVP_CTRL_GCM_SET_IVLEN, SN_NONCE_LEN, NULL) &&
       EVP_DecryptInit_ex(a->open, NULL, NULL, key, zero_nonce);
  if (!ok) {
    aead_wipe(a);
    free(a);
    sn_throw(env, "ERR_CRYPTO", "aeadCreate: AES-256-GCM initialisation failed");
    return NULL;
  }
  if (napi_create_external(env, a, aead_finalize, NULL, &external) != napi_ok ||
      napi_type_tag_object(env, external, &SN_AEAD_TAG) != napi_ok) {
    /* If the external exists its finalizer frees `a`; otherwise free it here. */
    if (!external) aead_finalize(env, a, NULL);
    sn_throw(env, "ENOMEM", "aeadCreate: cannot create the handle");
    return NULL;
  }
  return external;
}

/* Reads the (handle, buf, off, len, out, outOff) arguments shared by seal and open. */
static int packet_args(napi_env env, napi_callback_info info, sn_aead **a, uint8_t **buf, size_t *buflen,
                       uint32_t *off, uint32_t *len, uint8_t **out, size_t *outlen, uint32_t *outoff) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) {
    sn_throw_type(env, "expected (handle, buf, off, len, out, outOff)");
    return -1;
  }
  if (!(*a = aead_unwrap(env, argv[0])) || sn_get_bytes(env, argv[1], "buf", buf, buflen) < 0 ||
      sn_get_u32(env, argv[2], "off", off) < 0 || sn_get_u32(env, argv[3], "len", len) < 0 ||
      sn_get_bytes(env, argv[4], "out", out, outlen) < 0 || sn_get_u32(env, argv[5], "outOff", outoff) < 0)
    return -1;
  if ((uint64_t)*off + *len > *buflen) {
    sn_throw_range(env, "packet AEAD: off + len is past the end of buf");
    return -1;
  }
  return 0;
}

/* Regions [a, a+n) and [b, b+m) overlap other than exactly (in-place is allowed). */
static int bad_overlap(const uint8_t *a, size_t n, const uint8_t *b, size_t m) {
  if (a == b) return 0;
  return a < b + m && b < a + n;
}

/*
 * aeadSeal(handle, inner, off, len, out, outOff) -> packet length
 * out[outOff .. outOff+36) must already hold the packet header (the AAD, and
 * the nonce at bytes 24..36). Writes the ciphertext of inner[off..off+len) at
 * outOff+36 and the tag after it; inner may be exactly that ciphertext region
 * (sealing in place).
 */
static napi_value js_aead_seal(napi_env env, napi_callback_info info) {
  sn_aead *a;
  uint8_t *in, *out, *hdr, *ct;
  size_t inlen, outlen;
  uint32_t off, len, outoff;
  int n = 0, ok;
  napi_value result;

  if (packet_args(env, info, &a, &in, &inlen, &off, &len, &out, &outlen, &outoff) < 0) return NULL;
  if (len > SN_MAX_BODY || (uint64_t)outoff + SN_HEADER_LEN + len + SN_TAG_LEN > outlen) {
    sn_throw_range(env, "aeadSeal: inner packet too long or out too small");
    return NULL;
  }
  hdr = out + outoff;
  ct = hdr + SN_HEADER_LEN;
  if (bad_overlap(in + off, len, ct, len) || bad_overlap(in + off, len, hdr, SN_HEADER_LEN)) {
    sn_throw_range(env, "aeadSeal: inner overlaps the header or is not exactly the ciphertext region");
    return NULL;
  }
  /* Only the nonce changes per packet: the key schedule stays in the context. */
  ok = EVP_EncryptInit_ex(a->seal, NULL, NULL, NULL, hdr + SN_OFF_NONCE) &&
       EVP_EncryptUpdate(a->seal, NULL, &n, hdr, SN_HEADER_LEN) &&
       (len == 0 || EVP_EncryptUpdate(a->seal, ct, &n, in + off, (int)len)) &&
       EVP_EncryptFinal_ex(a->seal, ct + len, &n) &&
       EVP_CIPHER_CTX_ctrl(a->seal, EVP_CTRL_GCM_GET_TAG, SN_TAG_LEN, ct + len);
  if (!ok) {
    OPENSSL_cleanse(ct, len + SN_TAG_LEN);
    sn_throw(env, "ERR_CRYPTO", "aeadSeal: AES-256-GCM failed");
    return NULL;
  }
  napi_create_uint32(env, SN_HEADER_LEN + len + SN_TAG_LEN, &result);
  return result;
}

/*
 * aeadOpen(handle, pkt, off, len, out, outOff) -> plaintext length, or -1
 * Authenticates header || ciphertext || tag of pkt[off..off+len) and writes
 * the plaintext to out[outOff..). OpenSSL's GCM decrypts before it can know
 * the verdict, so on a bad tag the whole output region is wiped before -1 is
 * returned: no caller ever sees unauthenticated plaintext. `out` may be
 * exactly the ciphertext region (opening in place).
 */
static napi_value js_aead_open(napi_env env, napi_callback_info info) {
  sn_aead *a;
  uint8_t *pkt, *out, *hdr, *ct, *dst, tag[SN_TAG_LEN];
  size_t pktlen, outlen;
  uint32_t off, len, outoff, ctlen;
  int n = 0, ok;
  napi_value result;

  if (packet_args(env, info, &a, &pkt, &pktlen, &off, &len, &out, &outlen, &outoff) < 0) return NULL;
  if (len < SN_HEADER_LEN + SN_TAG_LEN || len - SN_HEADER_LEN - SN_TAG_LEN > SN_MAX_BODY) {
    napi_create_int32(env, -1, &result);
    return result;
  }
  ctlen = len - SN_HEADER_LEN - SN_TAG_LEN;
  if ((uint64_t)outoff + ctlen > outlen) {
    sn_throw_range(env, "aeadOpen: out too small for the plaintext");
    return NULL;
  }
  hdr = pkt + off;
  ct = hdr + SN_HEADER_LEN;
  dst = out + outoff;
  if (bad_overlap(dst, ctlen, ct, ctlen) || bad_overlap(dst, ctlen, hdr, SN_HEADER_LEN) ||
      bad_overlap(dst, ctlen, ct + ctlen, SN_TAG_LEN)) {
    sn_throw_range(env, "aeadOpen: out overlaps the packet other than exactly its ciphertext");
    return NULL;
  }
  memcpy(tag, ct + ctlen, SN_TAG_LEN);
  ok = EVP_DecryptInit_ex(a->open, NULL, NULL, NULL, hdr + SN_OFF_NONCE) &&
       EVP_DecryptUpdate(a->open, NULL, &n, hdr, SN_HEADER_LEN) &&
       (ctlen == 0 || EVP_DecryptUpdate(a->open, dst, &n, ct, (int)ctlen)) &&
       EVP_CIPHER_CTX_ctrl(a->open, EVP_CTRL_GCM_SET_TAG, SN_TAG_LEN, tag) &&
       EVP_DecryptFinal_ex(a->open, dst + ctlen, &n) > 0;
  if (!ok) {
    OPENSSL_cleanse(dst, ctlen);
    napi_create_int32(env, -1, &result);
    return result;
  }
  napi_create_int32(env, (int32_t)ctlen, &result);
  return result;
}

/* aeadWipe(handle): frees both contexts and their key schedules now (idempotent). */
static napi_value js_aead_wipe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool ok = false;
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_check_object_type_tag(env, argv[0], &SN_AEAD_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    sn_throw_type(env, "not a packet AEAD handle");
    return NULL;
  }
  aead_wipe(p);
  return NULL;
}

napi_value sn_aead_init(napi_env env, napi_value exports) {
  if (sn_export(env, exports, "aeadCreate", js_aead_create) < 0 ||
      sn_export(env, exports, "aeadSeal", js_aead_seal) < 0 || sn_export(env, exports, "aeadOpen", js_aead_open) < 0 ||
      sn_export(env, exports, "aeadWipe", js_aead_wipe) < 0)
    return NULL;
  return exports;
}
