/*
 * What the files of the filesystem's native addon share (binding.gyp builds
 * them into one module, supernet_fs.node; aead.c registers the exports).
 */
#ifndef SUPERNET_FSNATIVE_H
#define SUPERNET_FSNATIVE_H
#include <node_api.h>
#include <stddef.h>

/* Throws a TypeError with code ERR_INVALID_ARG; returns 0 for `return throw_type(...)` chains. */
int fs_throw_type(napi_env env, const char *msg);
/* Buffer argument as bytes; `want` >= 0 demands that length. 0 (and a throw) when it is not. */
int fs_bytes_arg(napi_env env, napi_value v, long want, unsigned char **p, size_t *len,
                 const char *what);
/* 0 (and a throw) when `v` is not a function. */
int fs_fn_arg(napi_env env, napi_value v, const char *what);

/* fileio.c: putFile(path, buf, durable, cb) and getFile(path, buf, cb). */
napi_value fs_put_file(napi_env env, napi_callback_info info);
napi_value fs_get_file(napi_env env, napi_callback_info info);

#endif
