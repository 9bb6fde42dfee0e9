{
  # The data-plane addon (native/gwlb_net.c): plain C against node_api.h, no C++ and no node-addon-api.
  # Headers come from nodedir (=/usr on this image), so `node-gyp rebuild` works offline.
  "targets": [
    {
      "target_name": "gwlb_net",
      "sources": ["native/gwlb_net.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall"],
      "cflags!": ["-O3"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
