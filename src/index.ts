/** attn — transformers from scratch in TypeScript. The library entry point. */
export * from './tensor/index.js';
export { backend, setBackend, registerBackend, availableBackends, jsBackend } from './backend/index.js';
export type { Backend, GemmArgs, AttentionDims, AdamWHyper, UnaryOp, BinaryOp } from './backend/backend.js';
export { Module, Parameter } from './nn/module.js';
export { Linear } from './nn/linear.js';
export { Embedding } from './nn/embedding.js';
export { LayerNorm } from './nn/layernorm.js';
export { Dropout } from './nn/dropout.js';
export { CausalSelfAttention, type AttentionConfig } from './nn/attention.js';
export { MLP } from './nn/mlp.js';
export { Block } from './nn/block.js';
export { GPT, type GPTOutput } from './models/gpt.js';
export { GPTConfigSchema, parseGPTConfig, type GPTConfig, type GPTConfigInput } from './models/gpt_config.js';
export {
  CharTokenizer, WordTokenizer, BPETokenizer, trainBPE, tokenizerFromJSON, loadTokenizerFile, loadDirTokenizer, buildTokenizer, streamDecoder,
  bpeFromGPT2Files, bpeFromHFTokenizer, bpeFromRanks, PATTERNS,
  type Tokenizer, type EncodeOptions, type SpecialSet, type BPETrainOptions, type TokenizerKind,
} from './tokenizers/index.js';
export { AdamW, type AdamWOptions } from './optim/adamw.js';
export { learningRate, type ScheduleOptions } from './optim/schedule.js';
export { clipGradNorm } from './optim/clip.js';
export { TokenDataset, type Batch } from './train/data.js';
export { train, DivergedError, type TrainRun, type TrainEvents, type TrainSummary, type StepInfo, type EvalInfo } from './train/trainer.js';
export { parseTrainOptions, TrainOptionsSchema, type TrainOptions, type TrainOptionsInput } from './train/options.js';
export { estimateLoss } from './train/evaluate.js';
export { saveCheckpoint, loadCheckpoint, type TrainerState } from './train/checkpoint.js';
export { generate, generateBatch, BatchDecoder, type GenerateOptions } from './generate/engine.js';
export { streamText, generateText, type TextGenerateOptions, type TextChunk } from './generate/stream.js';
export { KVCache } from './generate/kv_cache.js';
export { StopStrings } from './generate/stop_strings.js';
export { sampleToken, argmax, penalizeRepeats, checkSamplingOptions, type SamplingOptions } from './generate/sampling.js';
export { perplexity, type PerplexityOptions, type PerplexityResult } from './eval/perplexity.js';
export { quantizeModel, quantizeRows, dequantizeRows, dropInt8, isQuantized } from './nn/int8.js';
export { hfFiles, hfConfig, hfTensors, gpt2TokenizerFiles } from './io/hf_export.js';
export { pullModel, type PullOptions } from './io/hf_pull.js';
export { loadModel, modelFiles, type LoadedModel } from './io/model_dir.js';
export { writeDirAtomic } from './io/atomic.js';
export { UserError } from './io/errors.js';
export * from './io/safetensors.js';
export { runReferenceCheck, type ReferenceReport, type GroupResult } from './reference/check.js';
export { fablesCorpus } from './data/fables.js';
export { Rng, type RngState } from './util/rng.js';
export { planModel, formatPlan, type ModelPlan, type PlanConfig, type PlanOptions } from './plan/index.js';
export { MultiHeadAttention, type MultiHeadAttentionConfig, type AttendOptions } from './nn/multihead_attention.js';
export { EncoderLayer, addAndNorm, type EncoderLayerConfig, type NormPlacement } from './nn/encoder_layer.js';
export { FeedForward, type FeedForwardConfig, type Activation } from './nn/feed_forward.js';
export { PositionalEncoding, sinusoidalTable, type PositionEncoding } from './nn/positional.js';
export { ViT, type ViTOutput } from './models/vit.js';
export { parseViTConfig, ViTConfigSchema, numPatches, type ViTConfig } from './models/vit_config.js';
export { patchify } from './models/patchify.js';
export { parseIdx, readIdx, readIdxImages } from './data/idx.js';
export { readImageFolder, readPngFiles } from './data/image_folder.js';
export { loadImageDataset, type ImageDataset } from './data/image_dataset.js';
export { ImageSet, normalizedBatch, pixelStats } from './data/image_set.js';
export { trainViT, evaluateViT, predictViT } from './train/vit_trainer.js';
export { parseViTTrainOptions, type ViTTrainOptions } from './train/vit_options.js';
export { loadViT, vitFiles } from './io/vit_dir.js';
