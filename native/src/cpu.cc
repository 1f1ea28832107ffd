#include "cpu.h"

#include <cstdlib>
#include <cstring>

namespace attn {

Isa detected_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Portable;
}

static Isa initial_isa() {
  Isa best = detected_isa();
  // ATTN_ISA=portable|avx2|avx512 lowers the choice (for testing each path).
  if (const char* env = std::getenv("ATTN_ISA")) {
    Isa want = !std::strcmp(env, "portable") ? Isa::Portable : !std::strcmp(env, "avx2") ? Isa::Avx2 : Isa::Avx512;
    if (static_cast<int>(want) < static_cast<int>(best)) best = want;
  }
  return best;
}

static Isa g_isa = initial_isa();

bool cpu_has_bf16() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

static bool initial_bf16() {
  const char* env = std::getenv("ATTN_ISA");
  return cpu_has_bf16() && (!env || !std::strcmp(env, "avx512bf16"));
}

static bool g_bf16 = initial_bf16();

bool bf16_dot() { return g_bf16 && g_isa == Isa::Avx512; }

bool set_bf16_dot(bool on) {
  if (on && !cpu_has_bf16()) return false;
  g_bf16 = on;
  return true;
}

Isa current_isa() { return g_isa; }

bool set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_isa())) return false;
  g_isa = isa;
  return true;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace attn
