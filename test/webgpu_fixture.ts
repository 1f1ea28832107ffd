import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { UserError } from '../src/util/errors.js';

/**
 * Open the webgpu backend once for a test file (then go back to js), or say
 * why the file's tests skip: no adapter here. With ATTN_REQUIRE_WEBGPU=1 (CI,
 * where SwiftShader gives one) a missing adapter fails instead.
 */
export async function webGpuSkip(what: string): Promise<string | false> {
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
