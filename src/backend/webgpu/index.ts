import type { Backend } from '../backend.js';
import { createWebGpuBackend, type GpuArray } from './backend.js';
import { GpuContext, type GpuContextOptions } from './device.js';

export { createWebGpuBackend, WEBGPU, type GpuArray } from './backend.js';
export { GpuContext } from './device.js';

let opened: { ctx: GpuContext; backend: Backend<GpuArray> } | null = null;

/**
 * The WebGPU backend, opened once per process: finds an adapter (the
 * browser's navigator.gpu, or Dawn through the optional `webgpu` package in
 * Node) and a device. Throws UserError with one line when there is none.
 */
export async function openWebGpu(opts: GpuContextOptions = {}): Promise<{ ctx: GpuContext; backend: Backend<GpuArray> }> {
  if (!opened) {
    const ctx = await GpuContext.create(opts);
    opened = { ctx, backend: createWebGpuBackend(ctx) };
  }
  return opened;
}

/** The context of the opened backend, if any (for descriptions and benchmarks). */
export function openedWebGpu(): GpuContext | null {
  return opened?.ctx ?? null;
}
