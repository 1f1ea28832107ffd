import { Command, Option } from 'commander';
import type { Backend } from '../backend/backend.js';
import { describeBackend, envBackendChoice, selectBackend, selectBackendAsync, type BackendChoice } from '../backend/select.js';
import { UserError } from '../util/errors.js';
import { int } from './flags.js';

/** Add --backend and --threads to a command (webgpu among the choices for commands that run on it). */
export function withBackendFlags(cmd: Command, o: { webgpu?: boolean } = {}): Command {
  const help = 'compute backend: native (C++ SIMD, threads) when built, else js' + (o.webgpu ? '; webgpu: the GPU (also ATTN_BACKEND=webgpu)' : '');
  return cmd
    .addOption(new Option('--backend <name>', help).choices(['auto', 'js', 'native', ...(o.webgpu ? ['webgpu'] : [])]).default('auto'))
    .option('--threads <n>', 'native backend threads (default: ATTN_THREADS or all cores)', int);
}

/** Select the backend the flags ask for; returns a description for logs. */
export function useBackend(opts: { backend?: string; threads?: number }): { backend: Backend; description: string } {
  checkThreads(opts.threads);
  const backend = selectBackend((opts.backend ?? 'auto') as BackendChoice, opts.threads);
  return { backend, description: describeBackend(backend) };
}

/** useBackend for a command that can run on webgpu: --backend webgpu, or --backend auto with ATTN_BACKEND=webgpu, opens the device. */
export async function useBackendAsync(opts: { backend?: string; threads?: number }): Promise<{ backend: Backend; description: string }> {
  checkThreads(opts.threads);
  const choice = (opts.backend ?? 'auto') === 'auto' ? (envBackendChoice() ?? 'auto') : (opts.backend as BackendChoice);
  if (choice !== 'webgpu') return useBackend(opts);
  const backend = await selectBackendAsync('webgpu');
  return { backend, description: describeBackend(backend) };
}

function checkThreads(threads: number | undefined): void {
  if (threads !== undefined && threads < 1) throw new UserError('--threads must be ≥ 1');
}
