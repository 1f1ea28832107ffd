import { Command, Option } from 'commander';
import type { Backend } from '../backend/backend.js';
import { describeBackend, selectBackend, selectBackendAsync, type BackendChoice } from '../backend/select.js';
import { int } from './flags.js';

/**
 * Add --backend and --threads to a command; `webgpu` among the choices for
 * commands that run on the GPU (they select it with useBackendAsync).
 */
export function withBackendFlags(cmd: Command, o: { webgpu?: boolean } = {}): Command {
  const choices = o.webgpu ? ['auto', 'js', 'native', 'webgpu'] : ['auto', 'js', 'native'];
  const help = o.webgpu ? 'compute backend: native (C++ SIMD, threads) when built, else js; webgpu for the GPU' : 'compute backend: native (C++ SIMD, threads) when built, else js';
  return cmd
    .addOption(new Option('--backend <name>', help).choices(choices).default('auto'))
    .option('--threads <n>', 'native backend threads (default: ATTN_THREADS or all cores)', int);
}

/** Select the backend the flags ask for; returns a description for logs. */
export function useBackend(opts: { backend?: string; threads?: number }): { backend: Backend; description: string } {
  if (opts.threads !== undefined && opts.threads < 1) throw new Error('--threads must be ≥ 1');
  const backend = selectBackend((opts.backend ?? 'auto') as BackendChoice, opts.threads);
  return { backend, description: describeBackend(backend) };
}

/** useBackend for commands that accept webgpu (whose device opens asynchronously; one line when there is no adapter). */
export async function useBackendAsync(opts: { backend?: string; threads?: number }): Promise<{ backend: Backend; description: string }> {
  if (opts.backend !== 'webgpu') return useBackend(opts);
  const backend = await selectBackendAsync('webgpu');
  return { backend, description: describeBackend(backend) };
}
