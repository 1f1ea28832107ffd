// Kept for existing imports: generation lives in engine.ts (KV cache, batches) and stream.ts (text).
export { generate, generateBatch, BatchDecoder, type GenerateOptions } from './engine.js';
