{
  "targets": [
    {
      "target_name": "supernet_fs",
      "sources": ["aead.c", "fileio.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "cflags!": ["-O3"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "supernet_fuse",
      "sources": ["fuse-ll.c"],
      "include_dirs": ["<!(node -e \"require('fuse-shared-library/include')\")"],
      "libraries": ["<!(node -e \"require('fuse-shared-library/lib')\")", "-lm"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "cflags!": ["-O3"],
      "defines": ["NAPI_VERSION=8", "_FILE_OFFSET_BITS=64"]
    }
  ]
}
