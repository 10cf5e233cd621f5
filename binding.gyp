{
  "targets": [
    {
      "target_name": "supernet_native",
      "sources": [
        "net/native/addon.c",
        "net/native/io.c",
        "net/native/tun.c",
        "net/native/udp.c",
        "net/native/segment.c",
        "net/native/aead.c"
      ],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "cflags!": ["-O3"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
