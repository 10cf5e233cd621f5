/*
 * addon.c: module entry of supernet_native.node. N-API (not the V8 API) and
 * NAPI_MODULE_INIT make the addon context-aware: Jest and worker threads load
 * it several times per process, each instance with its own state.
 */
#include "sn.h"

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  sn_io *io;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      !(io = sn_io_unwrap(env, argv[0])))
    return NULL;
  sn_io_close(io);
  return NULL;
}

NAPI_MODULE_INIT() {
  if (!sn_tun_init(env, exports) || !sn_udp_init(env, exports) || !sn_aead_init(env, exports) || sn_export(env, exports, "close", js_close) < 0)
    return NULL;
  return exports;
}
