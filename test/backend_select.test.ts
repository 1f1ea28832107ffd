import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsBackend, type Backend } from '../src/backend/index.js';
import { bf16Fallback } from '../src/backend/select.js';
import { UserError } from '../src/util/errors.js';

describe('bf16Fallback', () => {
  it('js: a note that operands are rounded in the FP32 kernels', () => {
    assert.match(bf16Fallback(jsBackend) ?? '', /js backend rounds GEMM operands to bf16/);
  });

  it('webgpu: refused with one line, since its kernels do not round (no GPU needed: only the name is read)', () => {
    const webgpu = { ...jsBackend, name: 'webgpu' } as Backend;
    assert.throws(() => bf16Fallback(webgpu), (e: unknown) => e instanceof UserError && /--precision bf16 runs on host backends \(js, native\).*use --precision fp32 on webgpu/.test(e.message));
  });
});
