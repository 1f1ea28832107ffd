import type { Rng } from '../util/rng.js';
import { Parameter } from './module.js';

/** A parameter of normally distributed values: small random weights break the symmetry between units. */
export function normalParameter(shape: number[], std: number, rng: Rng): Parameter {
  const n = shape.reduce((p, q) => p * q, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
  return new Parameter(data, shape);
}

export function constantParameter(shape: number[], value: number): Parameter {
  const n = shape.reduce((p, q) => p * q, 1);
  return new Parameter(new Float32Array(n).fill(value), shape);
}
