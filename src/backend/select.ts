import { UserError } from '../util/errors.js';
import type { Backend } from './backend.js';
import { registerBackend, setBackend } from './index.js';
import { createNativeBackend, loadAddon, nativeLoadError } from './native/index.js';
import { openedWebGpu, openWebGpu } from './webgpu/index.js';

export type BackendChoice = 'auto' | 'js' | 'native' | 'webgpu';

/** The backend named by ATTN_BACKEND, when set (the CLI's --backend wins over it). */
export function envBackendChoice(): BackendChoice | undefined {
  const v = process.env.ATTN_BACKEND;
  if (v === undefined || v === '') return undefined;
  if (v === 'auto' || v === 'js' || v === 'native' || v === 'webgpu') return v;
  throw new UserError(`ATTN_BACKEND=${v} is not a backend (auto, js, native or webgpu)`);
}

/**
 * Open a backend that needs asynchronous setup (webgpu: an adapter and a
 * device) and make it current; the others as selectBackend. Throws UserError
 * with one line when the GPU is not there.
 */
export async function selectBackendAsync(choice: BackendChoice = envBackendChoice() ?? 'auto', threads?: number): Promise<Backend> {
  if (choice !== 'webgpu') return selectBackend(choice, threads);
  const { backend } = await openWebGpu();
  registerBackend(backend);
  return setBackend('webgpu');
}

let warned = false;

/**
 * Pick the compute backend (Node only; browsers use js). 'auto' takes native
 * when the addon was built and says once on stderr when it falls back to js.
 * `threads` sizes the native thread pool (default: ATTN_THREADS or all cores).
 */
export function selectBackend(choice: BackendChoice = 'auto', threads?: number): Backend {
  if (choice === 'js') return setBackend('js');
  if (choice === 'webgpu') {
    if (!openedWebGpu()) throw new UserError('the webgpu backend needs its device opened first (selectBackendAsync)');
    return setBackend('webgpu');
  }
  const addon = loadAddon();
  if (!addon) {
    if (choice === 'native') throw new UserError(`the native backend is not available (${nativeLoadError()}); run \`npm run build:native\` or use --backend js`);
    if (!warned) process.stderr.write(`attn: native backend unavailable (${nativeLoadError()}); using the js backend\n`);
    warned = true;
    return setBackend('js');
  }
  if (threads !== undefined) addon.setThreads(threads);
  registerBackend(createNativeBackend(addon));
  return setBackend('native');
}

/** A one-line description for logs: "native (avx2, 2 threads)" or "js". */
export function describeBackend(b: Backend): string {
  if (b.name === 'webgpu') return `webgpu (${openedWebGpu()?.adapterName ?? 'no device'})`;
  const addon = b.name === 'native' ? loadAddon() : null;
  return addon ? `native (${addon.isa()}, ${addon.threads()} threads)` : b.name;
}

/**
 * For bf16 training: a line saying that bf16 products will not run on
 * AVX-512 BF16 instructions here (and why), or null when they will. The
 * results are the same either way (operands rounded to bf16, FP32 sums);
 * only the speed-up is missing. The webgpu kernels do not round operands at
 * all, so there bf16 is refused (UserError), as --optimizer muon is.
 */
export function bf16Fallback(b: Backend): string | null {
  if (b.name === 'webgpu') throw new UserError('--precision bf16 runs on host backends (js, native): the webgpu kernels do not round to bf16; use --precision fp32 on webgpu');
  if (b.name !== 'native') return `--precision bf16 on the ${b.name} backend rounds GEMM operands to bf16 in its FP32 kernels: same results, no speed-up`;
  const addon = loadAddon()!;
  if (addon.bf16Dot()) return null;
  const why = addon.cpuHasBf16() ? 'AVX-512 BF16 is turned off (ATTN_ISA)' : 'this CPU has no AVX-512 BF16 instructions';
  return `--precision bf16: ${why}; GEMMs round their operands to bf16 and run on the ${addon.isa()} FP32 kernels: same results, slower than with vdpbf16ps`;
}
