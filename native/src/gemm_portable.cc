// Any CPU: 4-float vectors (SSE2 on x86-64, NEON on ARM via the compiler), a 4×8 tile.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "gemv.h"
#include "panel.h"
#include "threadpool.h"
namespace attn { namespace portable {
#define VEC_BYTES 16
constexpr int MR = 4;
constexpr int NRV = 2;
typedef float vf __attribute__((vector_size(16)));
static inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline vf splat(float x) { return vf{x, x, x, x}; }
#include "gemm_impl.inc"
#include "gemv_impl.inc"
#include "panel_impl.inc"
}}  // namespace attn::portable
