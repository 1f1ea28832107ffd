import { Command, Option } from 'commander';
import type { Backend } from '../backend/backend.js';
import { describeBackend, selectBackend, type BackendChoice } from '../backend/select.js';
import { int } from './flags.js';

/** Add --backend and --threads to a command. */
export function withBackendFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--backend <name>', 'compute backend: native (C++ SIMD, threads) when built, else js').choices(['auto', 'js', 'native']).default('auto'))
    .option('--threads <n>', 'native backend threads (default: ATTN_THREADS or all cores)', int);
}

/** Select the backend the flags ask for; returns a description for logs. */
export function useBackend(opts: { backend?: string; threads?: number }): { backend: Backend; description: string } {
  if (opts.threads !== undefined && opts.threads < 1) throw new Error('--threads must be ≥ 1');
  const backend = selectBackend((opts.backend ?? 'auto') as BackendChoice, opts.threads);
  return { backend, description: describeBackend(backend) };
}
