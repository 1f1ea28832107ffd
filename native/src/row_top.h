// Nearest rows by dot product, with the selection fused into the scan: the
// dense search of retrieval (src/rag/vector_matrix.ts) over a matrix of many
// short rows — 100 000 chunk vectors of 32 or 128 numbers — against one query.
// A GEMM with M = 1 writes every score to memory and leaves the selection to a
// second pass; here each thread keeps its own best k while it scans, so only
// rows that beat its worst kept cost more than a comparison, and nothing of n
// length is written. The js twin is src/backend/row_panels.ts.
#pragma once
#include <cstdint>

namespace attn {

// Rows stored in panels of ROW_PANEL rows: panel p is [width][ROW_PANEL] (row
// p·ROW_PANEL + l's component j at j·ROW_PANEL + l; zero past n), so one
// component of 16 rows is one vector and no horizontal sums are needed.
constexpr int ROW_PANEL = 16;

// Scans of fewer bytes run on the calling thread (row_top_impl.inc says why; set from
// the prefix scans' timings at 100 000 rows on the 2-core bench machine, loaded).
constexpr long ROW_TOP_THREADED_BYTES = 16L << 20;

struct RowTop {
  const float* q;      // [width]
  int n, width;
  const float* f32;    // panels of fp32 rows, or null
  const int8_t* i8;    // panels of int8 rows (score = scale[r]·Σ q·x), or null
  const float* scale;  // [n], with i8
  int k;
  int32_t* rows;       // [k] out, best first (ties: lower row first)
  float* scores;       // [k] out
};

// Returns how many were written: min(k, n).
int row_top(const RowTop& t);

// The best k of `count` given rows of a row-major fp32 matrix m [*, width]
// (a two-stage search's rerank): same order and outputs as row_top.
int row_top_of(const float* q, const float* m, int width, const int32_t* candidates, int count, int k, int32_t* rows, float* scores);

namespace portable { int row_top(const RowTop& t, int threads); }
namespace avx2 { int row_top(const RowTop& t, int threads); }
namespace avx512 { int row_top(const RowTop& t, int threads); }

}  // namespace attn
