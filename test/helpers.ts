import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { backward } from '../src/tensor/autograd.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

/** Tests run from the repository root (npm test); shared/ sits beside it in development and CI. */
export const SHARED = resolve(process.cwd(), '..', 'shared');
export const REFERENCE_DIR = resolve(SHARED, 'reference', 'gpt2-tiny');
export const SHAKESPEARE = resolve(SHARED, 'data', 'tinyshakespeare.txt');
export const hasShared = (p: string): boolean => existsSync(p);

/**
 * The skip reason of a test that checks attn against PyTorch (its numbers in
 * ../shared/reference, or torch itself), as `{ skip }` takes it. Elsewhere a
 * missing piece skips with this message; with ATTN_REQUIRE_REFERENCE=1 (CI,
 * as ATTN_REQUIRE_BROWSER and ATTN_REQUIRE_REDIS do) it fails the test file
 * instead, so a lost reference cannot pass unnoticed.
 */
export function referenceSkip(missing: string | false | null): string | false {
  if (!missing) return false;
  if (process.env.ATTN_REQUIRE_REFERENCE === '1') throw new Error(`ATTN_REQUIRE_REFERENCE=1 but ${missing}`);
  return missing;
}

/** Why /usr/bin/python3 cannot run the PyTorch checks, or false when it can. */
export function torchMissing(): string | false {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  return r.status === 0 ? false : '/usr/bin/python3 cannot import torch and numpy (apt-get install python3-torch python3-numpy)';
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');

/** Run the built attn command in `cwd`, as a user would (with `env` added to this process's environment). */
export function runAttn(args: string[], cwd: string, env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd, env: { ...process.env, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: non-zero exit, `pattern` on stderr, no stack trace. */
export function assertUserError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.notEqual(r.code, 0, 'exit code');
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

export function randn(shape: number[], rng: Rng, std = 1, requiresGrad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = new Tensor(new Float32Array(n), shape, requiresGrad);
  for (let i = 0; i < n; i++) t.data[i] = rng.normal() * std;
  return t;
}

/**
 * Finite-difference gradient check. The scalar probed is Σ out ⊙ R for a fixed
 * random R (so every output element matters), summed in double precision.
 * Central differences with step eps; in float32 the noise of a difference is
 * about 1e-7·|out|·√n / eps, hence the stated tolerances: an element passes
 * when |analytic − numeric| ≤ atol + rtol·|numeric|.
 */
export function gradCheck(
  f: () => Tensor,
  inputs: Tensor[],
  { eps = 3e-3, atol = 2e-3, rtol = 2e-2, seed = 7 }: { eps?: number; atol?: number; rtol?: number; seed?: number } = {},
): void {
  const out0 = f();
  const rng = new Rng(seed);
  const R = Float32Array.from({ length: out0.size }, () => rng.normal());
  const probe = (): number => {
    const o = f();
    let s = 0;
    for (let i = 0; i < o.size; i++) s += o.data[i]! * R[i]!;
    return s;
  };
  for (const x of inputs) x.grad = null;
  backward(out0, R);
  for (const [k, x] of inputs.entries()) {
    const analytic = x.grad ?? new Float32Array(x.size);
    for (let i = 0; i < x.size; i++) {
      const orig = x.data[i]!;
      x.data[i] = orig + eps;
      const up = probe();
      x.data[i] = orig - eps;
      const down = probe();
      x.data[i] = orig;
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(analytic[i]! - numeric);
      assert.ok(err <= atol + rtol * Math.abs(numeric), `input ${k} element ${i}: analytic ${analytic[i]} vs numeric ${numeric}`);
    }
  }
}

export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, msg = ''): void {
  assert.equal(got.length, want.length, `${msg} length`);
  for (let i = 0; i < got.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= atol, `${msg} element ${i}: ${got[i]} vs ${want[i]} (atol ${atol})`);
  }
}

/** Start `server` on a free port of 127.0.0.1 (a stand-in Hugging Face hub for the pull tests); its base URL. */
export async function listenLocally(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

/** Stop a listenLocally server, its keep-alive sockets too (a client's would hold it open). */
export function closeLocally(server: Server | undefined): void {
  server?.closeAllConnections();
  server?.close();
}
