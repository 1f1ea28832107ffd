/** Messages between the page (web/main.ts) and the training worker (web/worker.ts). */
import type { InspectReport } from '../src/eval/inspect/inspect_decoder.js';
import type { AttentionMaps, ModelFiles, ModelSizes, NextToken, TrainSettings } from './lib/session.js';

export type ToWorker =
  | { type: 'init'; text: string; sizes: ModelSizes; train: TrainSettings }
  | { type: 'load'; files: ModelFiles; text: string }
  | { type: 'start' }
  | { type: 'pause' }
  | { type: 'generate'; prompt: string; maxNewTokens: number; temperature: number; topK: number }
  | { type: 'stopGenerate' }
  | { type: 'attention'; prompt: string }
  /** Look inside the model on the text (src/eval/inspect/): head removal, logit lens, probes. */
  | { type: 'inspect'; text: string }
  | { type: 'save' };

export interface ModelInfo {
  params: number;
  vocabSize: number;
  config: ModelSizes & { vocab_size: number };
  /** Whether there is text to train on (a loaded model may have none in its vocabulary). */
  trainable: boolean;
  note?: string;
  /** Where the model computes: "webgpu (adapter)" when the page has a WebGPU adapter, else "js". */
  backend: string;
}

export type FromWorker =
  | ({ type: 'ready' } & ModelInfo)
  | { type: 'running'; running: boolean }
  | { type: 'step'; step: number; loss: number; tokensPerSec: number }
  | { type: 'eval'; step: number; train: number; val: number }
  | ({ type: 'token'; index: number } & NextToken)
  | { type: 'generated'; stopped: boolean }
  | ({ type: 'attention' } & AttentionMaps)
  | { type: 'inspect'; report: InspectReport }
  | { type: 'files'; files: ModelFiles }
  | { type: 'error'; message: string };
