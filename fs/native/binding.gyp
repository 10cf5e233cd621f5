{
  "targets": [
    {
      "target_name": "supernet_fs",
      "sources": ["aead.c", "fileio.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "cflags!": ["-O3"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
