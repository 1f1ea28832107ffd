#!/usr/bin/env bash
# The GPU check of issue #17, for a machine with an NVIDIA GPU (run from the repository root, with
# node_modules/webgpu and dist/ present, python3 with CUDA torch). Writes JSON lines to $OUT/
# (default ./bench-out): gemm_sweep.jsonl (every WGSL GEMM config on the square and training
# shapes, the ATTN_WEBGPU_GEMM value that picks the best, and split-K against the unsplit product
# on the weight-gradient shapes), profile.jsonl (one train step of M
# and G: dispatches, bind groups, buffers, writes, submits, encode ms, and GPU ms per kernel when
# the adapter has timestamp-query), profile_decode.jsonl (the same for one decode token of the 124M
# shape, with its recording and wait ms), webgpu.jsonl (attn bench --backend webgpu, run with the
# sweep's choice; its decode rows with `ahead` are the decoder's steps queued that deep ahead of their
# reads, with a digest of the tokens that must match the row without), webgpu_decode_tiled.jsonl (the decode again with ATTN_WEBGPU_SKINNY=0),
# webgpu_decode_unfolded.jsonl (the decode again with ATTN_WEBGPU_NORM_FOLD=0),
# webgpu_one_submit.jsonl (train and decode again with ATTN_WEBGPU_SUBMIT_EVERY=0), attention.jsonl
# (the fused attention kernels' GPU ms at config M's and G's shapes: the defaults, unsplit, and
# one invocation a query or key instead of four), torch_cuda.jsonl (the PyTorch eager
# CUDA FP32 twins; train-log10: loss.item() every 10th step; decode-ahead: no token read back until
# the end), and each part's stderr.
# The three A/B runs below set ATTN_DECODE_AHEAD=0: they compare with the row that reads every token.
# joined.jsonl (a Llama of SmolLM2-135M's size decoding with q·k·v and gate·up joined into one product
# each, and not: nn/joined_linear.ts), speculative.jsonl (GPT 124M greedy decoding with a 2-layer
# layer-skip draft, each round queued whole and read back once, against 4 steps queued ahead without:
# generate/speculative_device.ts). Each part has its own timeout (570 s in all); the whole stays under 10 minutes. A part that fails or times out
# leaves its partial lines and the others still run. ATTN_WEBGPU_GEMM set by the caller wins over
# the sweep's choice.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-./bench-out}"
mkdir -p "$OUT"
STEPS="${STEPS:-5}"
echo "== adapter" | tee "$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/summary.txt" || true
# Dawn's adapter, first: if this fails, nothing after it can use the GPU.
timeout 20 node --input-type=module -e "
  const { GpuContext } = await import('./dist/src/backend/webgpu/device.js');
  const ctx = await GpuContext.create();
  console.log(JSON.stringify({ workload: 'adapter', backend: 'webgpu', adapter: ctx.adapterName, max_buffer_bytes: ctx.limits.maxBufferSize }));
  ctx.destroy();
" 2> "$OUT/adapter.stderr" | tee "$OUT/adapter.jsonl" | tee -a "$OUT/summary.txt"
echo "adapter rc=${PIPESTATUS[0]}" | tee -a "$OUT/summary.txt"

echo "== GEMM sweep: every config, square and training shapes" | tee -a "$OUT/summary.txt"
timeout 90 node dist/src/cli/main.js bench --backend webgpu --workloads gemm-sweep --json \
  > "$OUT/gemm_sweep.jsonl" 2> "$OUT/gemm_sweep.stderr"
echo "gemm-sweep rc=$?" | tee -a "$OUT/summary.txt"
grep -E '"gemm-sweep-(best|choice|splitk)"' "$OUT/gemm_sweep.jsonl" | tee -a "$OUT/summary.txt"
# The sweep's best large,medium,small configs for the rest of the run (unless the caller chose).
CHOICE=$(grep '"gemm-sweep-choice"' "$OUT/gemm_sweep.jsonl" | sed -E 's/.*"ATTN_WEBGPU_GEMM":"([^"]*)".*/\1/' | tail -1)
if [ -z "${ATTN_WEBGPU_GEMM:-}" ] && [ -n "$CHOICE" ]; then export ATTN_WEBGPU_GEMM="$CHOICE"; fi
echo "ATTN_WEBGPU_GEMM=${ATTN_WEBGPU_GEMM:-default}" | tee -a "$OUT/summary.txt"

echo "== profile: one train step of M and G, host counts and GPU ms per kernel" | tee -a "$OUT/summary.txt"
timeout 50 node dist/src/cli/main.js bench --backend webgpu --workloads profile --config M,G --json \
  > "$OUT/profile.jsonl" 2> "$OUT/profile.stderr"
echo "profile rc=$?" | tee -a "$OUT/summary.txt"
grep -E '"profile(-kernels)?"' "$OUT/profile.jsonl" | tee -a "$OUT/summary.txt"

echo "== profile-decode: one decode token of the 124M shape, its recording and wait ms, GPU ms per kernel" | tee -a "$OUT/summary.txt"
timeout 20 node dist/src/cli/main.js bench --backend webgpu --workloads profile-decode --json \
  > "$OUT/profile_decode.jsonl" 2> "$OUT/profile_decode.stderr"
echo "profile-decode rc=$?" | tee -a "$OUT/summary.txt"
grep -E '"profile-decode(-kernel|-kernels)?"' "$OUT/profile_decode.jsonl" | tee -a "$OUT/summary.txt"

echo "== attn bench --backend webgpu (train M, G: each step's loss read, then as attn train runs, read every 10th; decode 124M, each token read back, then queued 1, 2, 4, 8 ahead; GEMM 1024-4096)" | tee -a "$OUT/summary.txt"
timeout 120 node dist/src/cli/main.js bench --backend webgpu --config M,G --steps "$STEPS" --json \
  > "$OUT/webgpu.jsonl" 2> "$OUT/webgpu.stderr"
echo "webgpu rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/webgpu.jsonl" | tee -a "$OUT/summary.txt"

echo "== the fused attention kernels at config M's and G's shapes (B 16, 6 heads / B 4, 12 heads; T 256, D 64), GPU ms: defaults, unsplit, one lane a row" | tee -a "$OUT/summary.txt"
timeout 20 node bench/webgpu_attention_ab.mjs 16,6,256,64 5 > "$OUT/attention.jsonl" 2> "$OUT/attention.stderr"
echo "attention M rc=$?" | tee -a "$OUT/summary.txt"
timeout 20 node bench/webgpu_attention_ab.mjs 4,12,256,64 5 >> "$OUT/attention.jsonl" 2>> "$OUT/attention.stderr"
echo "attention G rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/attention.jsonl" | tee -a "$OUT/summary.txt"

echo "== A/B of two host-side choices: decode 124M with the skinny product off (ATTN_WEBGPU_SKINNY=0: the tiled GEMM at M = 1)" | tee -a "$OUT/summary.txt"
ATTN_DECODE_AHEAD=0 ATTN_WEBGPU_SKINNY=0 timeout 30 node dist/src/cli/main.js bench --backend webgpu --workloads decode --steps "$STEPS" --json \
  > "$OUT/webgpu_decode_tiled.jsonl" 2> "$OUT/webgpu_decode_tiled.stderr"
echo "decode tiled rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/webgpu_decode_tiled.jsonl" | tee -a "$OUT/summary.txt"
echo "== ... decode 124M with each norm its own dispatch (ATTN_WEBGPU_NORM_FOLD=0: not folded into the product after it)" | tee -a "$OUT/summary.txt"
ATTN_DECODE_AHEAD=0 ATTN_WEBGPU_NORM_FOLD=0 timeout 20 node dist/src/cli/main.js bench --backend webgpu --workloads decode --steps "$STEPS" --json \
  > "$OUT/webgpu_decode_unfolded.jsonl" 2> "$OUT/webgpu_decode_unfolded.stderr"
echo "decode unfolded rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/webgpu_decode_unfolded.jsonl" | tee -a "$OUT/summary.txt"
echo "== ... and train M, G and decode with one submit per step or token (ATTN_WEBGPU_SUBMIT_EVERY=0: the GPU waits for the whole recording)" | tee -a "$OUT/summary.txt"
ATTN_DECODE_AHEAD=0 ATTN_WEBGPU_SUBMIT_EVERY=0 timeout 60 node dist/src/cli/main.js bench --backend webgpu --config M,G --workloads train,decode --steps "$STEPS" --json \
  > "$OUT/webgpu_one_submit.jsonl" 2> "$OUT/webgpu_one_submit.stderr"
echo "one submit rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/webgpu_one_submit.jsonl" | tee -a "$OUT/summary.txt"

echo "== Llama decode (SmolLM2-135M's size, random weights): q·k·v and gate·up joined into one product each, and not" | tee -a "$OUT/summary.txt"
timeout 20 node bench/webgpu_joined_ab.mjs 64 3 576 49152 > "$OUT/joined.jsonl" 2> "$OUT/joined.stderr"
echo "joined rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/joined.jsonl" | tee -a "$OUT/summary.txt"

echo "== GPT 124M decode (random weights), greedy: with a 2-layer layer-skip draft (each round queued whole, read back once) and without (4 steps queued ahead)" | tee -a "$OUT/summary.txt"
timeout 40 node bench/webgpu_speculative_ab.mjs 128 3 4 2 > "$OUT/speculative.jsonl" 2> "$OUT/speculative.stderr"
echo "speculative rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/speculative.jsonl" | tee -a "$OUT/summary.txt"

echo "== PyTorch eager CUDA FP32 twins" | tee -a "$OUT/summary.txt"
timeout 60 python3 bench/torch_cuda.py --steps "$STEPS" > "$OUT/torch_cuda.jsonl" 2> "$OUT/torch_cuda.stderr"
echo "torch_cuda rc=$?" | tee -a "$OUT/summary.txt"
cat "$OUT/torch_cuda.jsonl" | tee -a "$OUT/summary.txt"
