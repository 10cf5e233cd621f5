{
  "targets": [{
    "target_name": "fuse_ll",
    "include_dirs": ["<!(node -e \"require('fuse-shared-library/include')\")"],
    "libraries": ["<!(node -e \"require('fuse-shared-library/lib')\")"],
    "sources": ["fuse-ll.c"],
    "cflags": ["-O2", "-Wall", "-D_FILE_OFFSET_BITS=64"]
  }]
}
