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
});
