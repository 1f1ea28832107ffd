#include "gemm.h"

#include "cpu.h"
#include "threadpool.h"

namespace attn {

static void dispatch(const Gemm& g, int threads) {
  switch (current_isa()) {
    case Isa::Avx512: avx512::gemm(g, threads); break;
    case Isa::Avx2: avx2::gemm(g, threads); break;
    default: portable::gemm(g, threads); break;
  }
}

void gemm(const Gemm& g) { dispatch(g, pool().size()); }
void gemm_serial(const Gemm& g) { dispatch(g, 1); }

}  // namespace attn
