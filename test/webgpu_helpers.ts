import assert from 'node:assert/strict';
import type { Backend } from '../src/backend/backend.js';
import { backend, setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import type { DeviceArray } from '../src/backend/storage.js';
import type { Module } from '../src/nn/module.js';
import { moveToBackend } from '../src/nn/placement.js';
import { backward } from '../src/tensor/autograd.js';
import { Tensor } from '../src/tensor/tensor.js';
import { UserError } from '../src/util/errors.js';

/**
 * Whether this machine has a WebGPU adapter (a GPU, or SwiftShader with
 * VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json): false when it
 * has, else the reason to skip. With ATTN_REQUIRE_WEBGPU=1 (CI) a missing
 * adapter throws, failing the file instead of skipping it. Leaves js current.
 */
export async function webgpuSkip(what: string): Promise<string | false> {
  try {
    await selectBackendAsync('webgpu');
    setBackend('js');
    return false;
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    if (process.env.ATTN_REQUIRE_WEBGPU === '1') throw new Error(`ATTN_REQUIRE_WEBGPU=1 but ${e.message}`);
    return `${what} skipped: ${e.message}`;
  }
}

/** The webgpu backend, made current (the device is opened once per process). */
export async function webgpu(): Promise<Backend<DeviceArray>> {
  return (await selectBackendAsync('webgpu')) as Backend<DeviceArray>;
}

/** Worst |got − want| / (atol + rtol·|want|) must be ≤ 1. */
export function assertNear(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i]! - want[i]!) / (atol + rtol * Math.abs(want[i]!));
    assert.ok(r <= 1, `${what}: element ${i} is ${got[i]} vs ${want[i]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** A tensor's gradient, read back from whichever backend holds it. */
export async function readGrad(t: Tensor): Promise<Float32Array> {
  assert.ok(t.gradStorage, 'the tensor has a gradient');
  return new Tensor(t.gradStorage, t.shape).read();
}

/**
 * The loss and every parameter's gradient of one forward and backward, on js
 * and on webgpu, from the same seed: loss within rtol 1e-4, gradients within
 * rtol 1e-3 (atol 1e-5). Leaves js current.
 */
export async function sameStep(make: () => Module, loss: (m: Module) => Tensor, what: string): Promise<void> {
  setBackend('js');
  const ref = make();
  const refLoss = loss(ref);
  backward(refLoss);
  await webgpu();
  try {
    const model = make();
    moveToBackend(model);
    const got = loss(model);
    backward(got);
    assertNear(await got.read(), [refLoss.item()], 1e-4, 1e-6, `${what}: loss`);
    const want = new Map(ref.namedParameters());
    let compared = 0;
    for (const [name, p] of model.namedParameters()) {
      if (!want.get(name)!.grad) continue;
      assertNear(await readGrad(p), want.get(name)!.grad!, 1e-3, 1e-5, `${what}: gradient of ${name}`);
      compared++;
    }
    assert.ok(compared > 0, `${what}: no gradient compared`);
  } finally {
    setBackend('js');
  }
}

/**
 * The most reads of the current device backend in flight at once while `run`
 * runs (work queued ahead of its reads overlaps them: decode_ahead.ts).
 */
export async function mostReadsInFlight(run: () => Promise<void>): Promise<number> {
  const device = backend().device!;
  const read = device.read.bind(device);
  let inFlight = 0;
  let most = 0;
  device.read = async (s) => {
    most = Math.max(most, ++inFlight);
    try {
      return await read(s);
    } finally {
      inFlight--;
    }
  };
  try {
    await run();
  } finally {
    device.read = read;
  }
  return most;
}
