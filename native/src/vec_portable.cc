// Baseline copy of the element-wise loops (SSE2 on x86-64, NEON on ARM).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "vec.h"
namespace attn { namespace portable {
#include "vec_impl.inc"
}}  // namespace attn::portable

#include "cpu.h"

namespace attn {

const VecKernels& vec() {
  switch (current_isa()) {
    case Isa::Avx512: return avx512::table;
    case Isa::Avx2: return avx2::table;
    default: return portable::table;
  }
}

}  // namespace attn
