import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';
import type { Row } from './workloads.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../../bench/torch_reference.py', import.meta.url));

/** Why PyTorch cannot run here, or null when /usr/bin/python3 imports torch. */
export function torchUnavailable(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  if (!existsSync(SCRIPT)) return `${SCRIPT} not found`;
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  return r.status === 0 ? null : 'python3 cannot import torch and numpy (apt-get install python3-torch python3-numpy)';
}

/** Run the PyTorch reference script for `workloads` ("train:S", "gemm:768") at one thread count. */
export function runTorch(workloads: string[], threads: number, steps: number): Row[] {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync(PYTHON, [SCRIPT, '--threads', String(threads), '--workloads', workloads.join(','), '--steps', String(steps)], {
    encoding: 'utf8',
    env,
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new UserError(`PyTorch reference failed: ${(r.stderr || '').trim().split('\n').at(-1)}`);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
}
