import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
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
