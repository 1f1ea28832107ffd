import type { Rng } from '../util/rng.js';
import { Parameter } from './module.js';

let drawing = true;
let allocating = true;

/**
 * Build modules whose weights are about to be overwritten (loading a
 * checkpoint) without drawing random numbers for them: for GPT-2 124M that
 * is 124 million normals, seconds of start-up for values nobody reads.
 */
export function withoutInit<T>(build: () => T): T {
  const before = drawing;
  drawing = false;
  try {
    return build();
  } finally {
    drawing = before;
  }
}

/**
 * Build modules whose every parameter the caller assigns or replaces (loading a
 * model directory): parameters are placeholders with no values at all
 * (Parameter.placeholder), so loading an int8 model never allocates the fp32
 * matrices it does not use.
 */
export function withoutAllocation<T>(build: () => T): T {
  const before = allocating;
  allocating = false;
  try {
    return withoutInit(build);
  } finally {
    allocating = before;
  }
}

/** A parameter of normally distributed values: small random weights break the symmetry between units. */
export function normalParameter(shape: number[], std: number, rng: Rng): Parameter {
  if (!allocating) return Parameter.placeholder(shape);
  const n = shape.reduce((p, q) => p * q, 1);
  const data = new Float32Array(n);
  if (drawing) for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
  return new Parameter(data, shape);
}

export function constantParameter(shape: number[], value: number): Parameter {
  if (!allocating) return Parameter.placeholder(shape);
  const n = shape.reduce((p, q) => p * q, 1);
  return new Parameter(new Float32Array(n).fill(value), shape);
}
