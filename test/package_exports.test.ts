import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

/**
 * What a program gets from `import … from 'attn'` (package.json "exports" ".":
 * dist/src/index.js), through the package's own name, as a user's code would
 * import it.
 */
describe('package exports', () => {
  it('the server, the point-cloud and the captioning APIs the docs name', async () => {
    const attn = (await import('attn')) as Record<string, unknown>;
    const names = [
      'startServer',
      'PointCloudTransformer', 'trainPointClouds', 'evaluatePointClouds', 'predictPointClouds', 'tokenizeClouds', 'loadPointTransformer', 'parsePointCloudTrainOptions',
      'loadPointCloudFolder', 'readPointFile', 'shapesDataset', 'generateShapes',
      'Captioner', 'trainCaptioner', 'evaluateCaptioner', 'loadCaptioner', 'loadCaptionData', 'parseCaptionTrainOptions', 'writeCaptions', 'captionAttention',
      // already there: the language models and the other model families
      'GPT', 'Llama', 'ChatSession', 'loadModel', 'ViT', 'Transformer', 'Embedder',
    ];
    for (const name of names) assert.equal(typeof attn[name], 'function', name);
  });

  it('the library calls the other docs name (backends, training, speculative decoding, tokenizers, LoRA, GGUF, quantized inference, WebGPU tuning)', async () => {
    const attn = (await import('attn')) as Record<string, unknown>;
    const names = [
      'selectBackend', 'selectBackendAsync', 'trainStepAsync', 'moveToBackend', 'withHostValues', // docs/backends.md
      'distillationObjective', 'packForDecoding', 'PanelLinear', // docs/speculative_decoding.md
      'ChatTemplate', 'parseChatMessages', 'HFTokenizer', // docs/tokenizers.md
      'batchForward', // docs/lora.md
      'llamaToGGUF', 'withoutAllocation', // docs/gguf.md
      'useQuantizedMatrices', 'quantizeMatrices', 'BlockQuantizedLinear', 'QuantizedEmbedding', 'setFusedDecode', 'withScratch', 'withScratchStage', // docs/quantized_inference.md
      'setGemmChoice', 'parseGemmChoice', 'setSkinnyRows', 'setSplitK', // docs/webgpu_performance.md
    ];
    for (const name of names) assert.equal(typeof attn[name], 'function', name);
    assert.equal(typeof (attn.ChatTemplate as { fromTokenizerConfig?: unknown }).fromTokenizerConfig, 'function');
    assert.equal(typeof attn.DEFAULT_CHAT_TEMPLATE, 'string');
  });
});
