import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backward } from '../src/tensor/autograd.js';
import { abs } from '../src/tensor/ops/abs.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { gradCheck, randn } from './helpers.js';

describe('abs', () => {
  it('forward is |x|', () => {
    assert.deepEqual([...abs(Tensor.from([-2, 0, 3.5])).data], [2, 0, 3.5]);
  });

  it('passes a finite-difference gradient check away from the kink', () => {
    const x = randn([3, 5], new Rng(11));
    // Keep inputs further than the check's step from 0, where the slope jumps.
    x.data.forEach((v, i) => (x.data[i] = v >= 0 ? v + 0.1 : v - 0.1));
    gradCheck(() => abs(x), [x]);
  });

  it('has gradient 0 at exactly 0', () => {
    const x = Tensor.from([0, -1, 1], [3], true);
    backward(abs(x), Float32Array.of(1, 1, 1));
    assert.deepEqual([...x.grad!], [0, -1, 1]);
  });
});
