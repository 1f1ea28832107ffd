import { backend } from '../backend/index.js';
import { gemmArgs, mat } from '../backend/gemm_args.js';
import { selectBackendAsync } from '../backend/select.js';
import { openedWebGpu } from '../backend/webgpu/index.js';
import { argmaxRowsOf, logitsCached } from '../generate/cached_forward.js';
import { decodeAhead, setDecodeAhead } from '../generate/decode_ahead.js';
import { BatchDecoder } from '../generate/engine.js';
import { KVCache } from '../generate/kv_cache.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { moveToBackend } from '../nn/placement.js';
import { quantize } from '../nn/quantized_linear.js';
import { releaseStorage, Tensor } from '../tensor/tensor.js';
import { queueTrainStep, trainStepAsync } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { median } from './configs.js';
import { DECODE_CONFIGS } from './decode.js';
import { profileDecodeToken, profileTrainStep } from './webgpu_profile.js';
import { sweepWebgpuGemm } from './webgpu_sweep.js';
import { trainBenchSetup, type Row } from './workloads.js';

/**
 * `attn bench --backend webgpu`: the GPU's figures, in this process (one
 * device, opened once). The adapter's name comes first, then training
 * tokens/s for each config asked for (the CLI's default: M and G; whole steps: forward, backward, clip, AdamW,
 * each step waiting for its loss as a training run does), batch-1 decoding of
 * the 124M shape with a KV cache, fp32 and int8 (each token's argmax taken on
 * the device and its 4 bytes read back, as greedy decoding does), and GEMM GFLOP/s. Every workload that fails
 * (a kernel not written yet, memory) is one row with its error, and the rest
 * still run. Speed on SwiftShader means nothing: run this on a real GPU.
 */
export async function benchWebGpu(o: { configs: string[]; steps: number; gemmSizes: number[]; workloads?: string[] }, emit: (r: Row) => void): Promise<void> {
  await selectBackendAsync('webgpu');
  const ctx = openedWebGpu()!;
  emit({ workload: 'adapter', backend: 'webgpu', adapter: ctx.adapterName, max_buffer_bytes: ctx.limits.maxBufferSize });
  const attempt = async (what: Row, f: () => Promise<Row>) => {
    try {
      emit({ ...what, ...(await f()), backend: 'webgpu', threads: 1 });
    } catch (e) {
      emit({ ...what, backend: 'webgpu', error: (e as Error).message.split('\n')[0] ?? 'error' });
    }
  };
  const kinds = o.workloads ?? ['train', 'decode', 'gemm'];
  if (kinds.includes('profile')) {
    for (const config of o.configs) {
      try {
        await profileTrainStep(ctx, config, emit);
      } catch (e) {
        emit({ workload: 'profile', config, backend: 'webgpu', error: (e as Error).message.split('\n')[0] ?? 'error' });
      }
    }
  }
  if (kinds.includes('profile-decode')) {
    try {
      await profileDecodeToken(ctx, emit);
    } catch (e) {
      emit({ workload: 'profile-decode', config: '124M', backend: 'webgpu', error: (e as Error).message.split('\n')[0] ?? 'error' });
    }
  }
  if (kinds.includes('gemm-sweep')) await sweepWebgpuGemm({ ctx }, emit);
  if (kinds.includes('train')) {
    for (const config of o.configs) {
      await attempt({ workload: 'train', config }, () => trainSteps(config, config === 'G' ? Math.max(3, o.steps >> 1) : o.steps));
      await attempt({ workload: 'train', config, reads: READ_EVERY }, () => trainStepsAsRun(config, 3));
    }
  }
  if (kinds.includes('decode')) {
    await attempt({ workload: 'decode', config: '124M', dtype: 'fp32' }, () => benchWebGpuDecode(o.steps * 8, false));
    await attempt({ workload: 'decode', config: '124M', dtype: 'int8' }, () => benchWebGpuDecode(o.steps * 8, true));
    // The same tokens through the decoder a user runs, its steps queued 1, 2, 4 and 8 deep ahead of their reads (generate/decode_ahead.ts).
    if (decodeAhead() > 0) {
      for (const int8 of [false, true]) {
        try {
          await benchWebGpuDecodeAhead(o.steps * 8, int8, [1, 2, 4, 8], (depth, r) => emit({ workload: 'decode', config: '124M', dtype: int8 ? 'int8' : 'fp32', ahead: depth, default: depth === decodeAhead(), ...r, backend: 'webgpu', threads: 1 }));
        } catch (e) {
          emit({ workload: 'decode', config: '124M', dtype: int8 ? 'int8' : 'fp32', ahead: decodeAhead(), backend: 'webgpu', error: (e as Error).message.split('\n')[0] ?? 'error' });
        }
      }
    }
  }
  if (kinds.includes('gemm')) for (const n of o.gemmSizes) await attempt({ workload: 'gemm', n }, () => gemm(n, o.steps * 2));
}

async function trainSteps(config: string, steps: number): Promise<Row> {
  const { model, opt, objective, batch, n } = trainBenchSetup(config);
  const times: number[] = [];
  let loss = NaN;
  for (let i = 0; i < 2 + steps; i++) {
    const t0 = performance.now();
    loss = (await trainStepAsync(opt, objective, [batch], { lr: 1e-3, gradClip: 1 })).loss;
    if (i >= 2) times.push(performance.now() - t0);
  }
  const ms = median(times);
  return { tokens_per_s: (n / ms) * 1000, step_ms: ms, params: model.numParameters(), loss };
}

/** `attn train`'s default --log-interval: the loop reads a step's loss back every this many steps. */
const READ_EVERY = 10;

/**
 * Training as `attn train` runs it on a device (train/loop.ts): READ_EVERY − 1
 * steps queued without reading their loss (queueTrainStep), then one that
 * reads it, so the host records a step while the GPU runs the last one
 * instead of waiting for a read each step. A step's time is a block's over
 * READ_EVERY, the median of `blocks` blocks after two steps of warm-up.
 * bench/torch_cuda.py's twin (`train-log10`) calls loss.item() as often.
 */
async function trainStepsAsRun(config: string, blocks: number): Promise<Row> {
  const { model, opt, objective, batch, n } = trainBenchSetup(config);
  const s = { lr: 1e-3, gradClip: 1 };
  for (let i = 0; i < 2; i++) await trainStepAsync(opt, objective, [batch], s);
  const times: number[] = [];
  let loss = NaN;
  for (let b = 0; b < blocks; b++) {
    const t0 = performance.now();
    for (let i = 1; i < READ_EVERY; i++) queueTrainStep(opt, objective, [batch], s);
    loss = (await trainStepAsync(opt, objective, [batch], s)).loss;
    times.push((performance.now() - t0) / READ_EVERY);
  }
  const ms = median(times);
  return { tokens_per_s: (n / ms) * 1000, step_ms: ms, params: model.numParameters(), loss };
}

const PROMPT = 16;

/**
 * Batch-1 greedy decoding of the 124M shape with a KV cache on the device,
 * the twin of bench/decode.ts and of bench/torch_cuda.py's decode: each step
 * records the whole forward pass and the argmax into one command buffer and
 * reads back 4 bytes (the token id). encode_ms is the JavaScript side of a
 * step (recording and submitting, before the wait): the floor of a step
 * however fast the GPU is.
 */
export async function benchWebGpuDecode(steps: number, int8: boolean, config = '124M'): Promise<Row> {
  const { model, prompt } = decodeSetup(int8, config);
  const cache = new KVCache(model.config, 1, PROMPT + steps + 2);
  const encodeTimes: number[] = [];
  const next = async (ids: Int32Array, T: number) => {
    const t0 = performance.now();
    const scores = logitsCached(model, ids, [1, T], cache);
    const token = argmaxRowsOf(scores); // recorded and submitted; the wait is below
    encodeTimes.push(performance.now() - t0);
    const id = (await token)[0]!;
    releaseStorage(scores.storage);
    return id;
  };
  let token = await next(prompt, PROMPT);
  const tokens = [token];
  const times: number[] = [];
  encodeTimes.length = 0;
  for (let i = 0; i < steps + 2; i++) {
    const t0 = performance.now();
    token = await next(Int32Array.of(token), 1);
    tokens.push(token);
    if (i >= 2) times.push(performance.now() - t0);
  }
  const ms = median(times);
  cache.dispose();
  return { tokens_per_s: 1000 / ms, step_ms: ms, prompt: PROMPT, encode_ms: median(encodeTimes.slice(2)), tokens: tokensDigest(tokens) };
}

/** The decode benches' model (weights from seed 1, int8 rows or fp32, on the device) and prompt. */
function decodeSetup(int8: boolean, config: string): { model: GPT; prompt: Int32Array } {
  const model = new GPT(parseGPTConfig(DECODE_CONFIGS[config]!), new Rng(1)).eval();
  if (int8) quantize(model);
  moveToBackend(model);
  const rng = new Rng(2);
  return { model, prompt: Int32Array.from({ length: PROMPT }, () => rng.int(model.config.vocab_size)) };
}

/** A short digest of a token sequence (FNV-1a over the ids, hex): two rows that generated the same tokens show the same digest. */
export function tokensDigest(ids: readonly number[]): string {
  let h = 0x811c9dc5;
  for (const id of ids) {
    h ^= id;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${ids.length}:${h.toString(16).padStart(8, '0')}`;
}

/**
 * benchWebGpuDecode's tokens through BatchDecoder.stepAsync, the decoder that
 * `attn sample` and the library run, its greedy steps queued `depth` deep
 * (each depth in turn, one model), each fed the last one's picks on the
 * device. A step's time is from one call to the next: in the steady state,
 * one read awaited while the queued steps run. `tokens` matches
 * benchWebGpuDecode's when the queued path picks the same tokens as the one
 * that waits for every read.
 */
export async function benchWebGpuDecodeAhead(steps: number, int8: boolean, depths: readonly number[], emit: (depth: number, row: Row) => void, config = '124M'): Promise<void> {
  const { model, prompt } = decodeSetup(int8, config);
  const was = decodeAhead();
  try {
    for (const depth of depths) {
      setDecodeAhead(depth);
      const dec = new BatchDecoder(model, [prompt], { maxNewTokens: steps + 3, greedy: true });
      const tokens: number[] = [];
      const times: number[] = [];
      for (let i = 0; !dec.finished; i++) {
        const t0 = performance.now();
        const [id] = await dec.stepAsync();
        if (id !== null && id !== undefined) tokens.push(id);
        if (i >= 3) times.push(performance.now() - t0); // the prefill and two warm-up tokens first, as benchWebGpuDecode
      }
      const ms = median(times);
      emit(depth, { tokens_per_s: 1000 / ms, step_ms: ms, prompt: PROMPT, tokens: tokensDigest(tokens) });
    }
  } finally {
    setDecodeAhead(was);
  }
}

/**
 * GEMM throughput: GEMMS_PER_TIMING back-to-back products per timed sync (as
 * bench/torch_cuda.py times its own), so a device round trip — a few ms
 * through Dawn in Node — is not counted as kernel time.
 */
async function gemm(n: number, reps: number): Promise<Row> {
  const [a, b, c] = [Tensor.from(new Float32Array(n * n).fill(0.5), [n, n]), Tensor.from(new Float32Array(n * n).fill(0.25), [n, n]), Tensor.empty([n, n])];
  const device = backend().device!;
  const times: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    for (let j = 0; j < GEMMS_PER_TIMING; j++) backend().gemm(gemmArgs({ M: n, N: n, K: n }, mat(c.storage, n), mat(a.storage, n), mat(b.storage, n)));
    await device.sync();
    if (i >= 2) times.push((performance.now() - t0) / GEMMS_PER_TIMING);
  }
  const ms = median(times);
  return { gflops: (2 * n ** 3) / (ms / 1000) / 1e9, ms, per_timing: GEMMS_PER_TIMING };
}

const GEMMS_PER_TIMING = 10;
