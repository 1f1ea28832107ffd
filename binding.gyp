{
  "targets": [
    {
      "target_name": "attn_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/cpu.cc",
        "native/src/threadpool.cc",
        "native/src/gemm.cc",
        "native/src/gemm_portable.cc",
        "native/src/gemm_avx2.cc",
        "native/src/gemm_avx512.cc",
        "native/src/gemm_bf16.cc",
        "native/src/kernels.cc",
        "native/src/attention.cc",
        "native/src/decoder_step.cc",
        "native/src/vec_portable.cc",
        "native/src/vec_avx2.cc",
        "native/src/vec_avx512.cc",
        "native/src/quant.cc",
        "native/src/quant_portable.cc",
        "native/src/quant_avx2.cc",
        "native/src/quant_avx512.cc",
        "native/src/stream_read.cc",
        "native/src/row_top.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-std=c++17", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-pthread"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y"],
      "ldflags": ["-pthread"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17"] }
    }
  ]
}
