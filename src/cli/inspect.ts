import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import type { InspectableLM } from '../eval/inspect/decoder_parts.js';
import { inspectDecoder, type InspectReport } from '../eval/inspect/inspect_decoder.js';
import { inspectViT, type ViTInspectReport } from '../eval/inspect/inspect_vit.js';
import { writeInspectReport } from '../eval/inspect/report_files.js';
import { checkDirPath } from './out_dir.js';
import { writeViTReport } from '../eval/inspect/vit_report_files.js';
import { loadViT, VIT_MODEL_TYPE } from '../io/vit_dir.js';
import { loadSeq2Seq, SEQ2SEQ_MODEL_TYPE } from '../io/seq2seq_dir.js';
import { inspectEncoderDecoder, type EncDecInspectReport } from '../eval/inspect/inspect_encoder_decoder.js';
import { writeEncDecReport } from '../eval/inspect/encdec_report_files.js';
import { ATTENTION_KINDS } from '../eval/inspect/encoder_decoder_view.js';
import { seq2seqView } from '../eval/inspect/seq2seq_view.js';
import { taskFrom } from './seq2seq.js';
import { FASHION_MNIST_DIR, trainedOptions } from './caption.js';
import { CAPTIONER_MODEL_TYPE, loadCaptioner } from '../io/captioner_dir.js';
import { captionerView } from '../eval/inspect/captioner_view.js';
import { loadCaptionData } from '../train/caption_trainer.js';
import { captionTokens } from '../train/caption_setup.js';
import { attentionOverlay } from '../util/attention_overlay.js';
import { encodePng } from '../util/png.js';
import { loadModel } from '../io/model_dir.js';
import { readTextFile } from '../io/read_text.js';
import { UserError } from '../util/errors.js';
import { useBackend, withBackendFlags } from './backend_flags.js';
import { int, seed } from './flags.js';
import { vitTestSet } from './vit.js';
import { alignClasses, pointData, trainedOptions as pointTrainedOptions } from './pointcloud.js';
import { inspectPointCloud, type PointCloudInspectReport } from '../eval/inspect/inspect_point_cloud.js';
import { writePointCloudReport } from '../eval/inspect/point_cloud_report_files.js';
import { loadPointTransformer, POINT_TRANSFORMER_MODEL_TYPE } from '../io/point_transformer_dir.js';
import { pointBatch, tokenizeClouds } from '../train/point_cloud_trainer.js';
import { inspectEmbedder, type EmbedderInspectReport } from '../eval/inspect/inspect_embedder.js';
import { writeEmbedderReport } from '../eval/inspect/embedder_report_files.js';
import { EMBEDDER_TYPE, loadEmbedder } from '../io/embedder_dir.js';

export interface InspectCliOptions {
  model: string;
  data?: string;
  /** Point-cloud classifiers: a generated data set (shapes) instead of --data. */
  task?: string;
  out: string;
  seed: number;
  windows: number;
  length?: number;
  mapLength: number;
  top: number;
  /** ViT: test images for head removal and the lens. */
  images: number;
  /** Encoder–decoders: validation examples (sentence pairs, captioned images) for head removal, the lens and the probes. */
  examples: number;
  backend?: string;
  threads?: number;
}

/**
 * The model kinds `attn inspect` reads: decoder language models, ViT
 * classifiers and encoder–decoders — each has a loss to remove heads from,
 * a residual stream and a read-out (final norm and head) the tools of
 * src/eval/inspect/ are built on (see docs/inspect.md).
 */
export const INSPECTABLE = 'decoder language models — GPT (attn\'s own, Hugging Face gpt2, GGUF gpt2) and the Llama family (attn train --arch llama, Hugging Face Llama/Qwen2/Mistral, GGUF llama) — and ViT image classifiers, point-cloud classifiers (attn pointcloud), sentence embedders (attn embed), encoder–decoder translation models (attn seq2seq) and captioners (attn caption)';

/** Load a decoder language model, or fail with one line naming what inspect supports. */
function loadInspectable(dir: string): { model: InspectableLM; tokenizer: ReturnType<typeof loadModel>['tokenizer'] } {
  try {
    return loadModel(dir);
  } catch (e) {
    if (e instanceof UserError && /not a GPT language model/.test(e.message)) throw new UserError(`attn inspect supports ${INSPECTABLE}: ${e.message.replace(/, not a GPT language model: use `.*`$/, '')}`);
    throw e;
  }
}

/** --data, or else the text the model was trained on (trainer.json records its path). */
function textFor(o: InspectCliOptions): { path: string; text: string } {
  let path = o.data;
  if (path === undefined) {
    const recorded = recordedDataPath(o.model);
    if (!recorded || !existsSync(recorded)) throw new UserError(`give --data FILE: ${o.model} records no training text that exists here`);
    path = recorded;
  }
  return { path, text: readTextFile(path) };
}

/** The training text's path trainer.json records; undefined when there is none, or the file is unreadable or of another shape (--data is asked for instead). */
function recordedDataPath(model: string): string | undefined {
  try {
    const raw = JSON.parse(readFileSync(join(model, 'trainer.json'), 'utf8')) as { data?: { path?: unknown } } | null;
    const path = raw?.data?.path;
    return typeof path === 'string' ? path : undefined;
  } catch {
    return undefined;
  }
}

/** The model_type config.json names (undefined when there is none: loadModel names what is wrong with the directory). */
function modelType(dir: string): unknown {
  try {
    return (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type;
  } catch {
    return undefined;
  }
}

/** An encoder–decoder translation model on the held-out pairs of its task (or of --data, a pairs file). */
function inspectSeq2SeqDir(o: InspectCliOptions): { report: EncDecInspectReport; files: string[] } {
  const { model, tokenizer, task } = loadSeq2Seq(o.model);
  if (o.data !== undefined && (!existsSync(o.data) || statSync(o.data).isDirectory())) throw new UserError(`--data ${o.data}: expected the sentence-pair file (source<TAB>target per line) the model trained on`);
  const source = 'data' in task ? { ...task, data: o.data ?? task.data } : o.data !== undefined ? { data: o.data, reverse: task.reverse } : task;
  if ('data' in source && !existsSync(source.data)) throw new UserError(`give --data PAIRS.tsv: ${o.model} was trained on ${source.data}, which does not exist here`);
  const pairs = taskFrom(source).heldOut(1000);
  let report: EncDecInspectReport;
  try {
    report = inspectEncoderDecoder(seq2seqView(model, tokenizer, pairs), { seed: o.seed, examples: o.examples, top: o.top });
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`--data: ${e.message}`);
    throw new UserError(`${'data' in source ? source.data : 'the held-out pairs'}: ${(e as Error).message}`);
  }
  return { report, files: writeEncDecReport(o.out, report, o.model, { model: 'A translation model (encoder–decoder)', source: 'Source', target: 'Target read by the decoder (BOS first)' }) };
}

/** A ViT on the test images of --data: maps, rollout over the picture, head removal, the class token layer by layer. */
function inspectViTDir(o: InspectCliOptions): { report: ViTInspectReport; files: string[] } {
  if (o.data === undefined) throw new UserError('give --data DIR: the images to inspect the ViT on (a Fashion-MNIST folder or PNG class folders, as for attn vit eval)');
  if (o.images < 4) throw new UserError('--images must be ≥ 4 (¼ of them score the probes)');
  const model = loadViT(o.model);
  const report = inspectViT(model, vitTestSet(model, o.model, o.data), { seed: o.seed, images: o.images, top: o.top });
  return { report, files: writeViTReport(o.out, report, o.model) };
}

/** A point-cloud classifier on the test clouds of --data (a point-file folder) or --task shapes (regenerated from the training seed). */
function inspectPointCloudDir(o: InspectCliOptions): { report: PointCloudInspectReport; files: string[] } {
  const model = loadPointTransformer(o.model);
  if (o.data !== undefined && (!existsSync(o.data) || !statSync(o.data).isDirectory())) {
    throw new UserError(`--data ${o.data}: expected a folder of point files (one subfolder of .xyz/.off/.ply files per class), as for attn pointcloud eval, or --task shapes`);
  }
  // Only the test split is read: one generated training cloud per class keeps --task shapes quick (the test set has its own seed).
  const { test } = pointData(o, { ...pointTrainedOptions(o.model), trainPerClass: 1 });
  const set = alignClasses(test, model, o.data ?? `--task ${o.task}`);
  const tokens = tokenizeClouds(model, set);
  const report = inspectPointCloud(model, { tokens, labels: set.labels, names: set.names, batch: (ids) => pointBatch(model, tokens, ids) }, { seed: o.seed, clouds: o.examples, top: o.top });
  return { report, files: writePointCloudReport(o.out, report, o.model) };
}

/** A sentence embedder on the lines of --data (a UTF-8 text file, one text per line). */
function inspectEmbedderDir(o: InspectCliOptions): { report: EmbedderInspectReport; files: string[] } {
  if (o.data === undefined) throw new UserError('give --data FILE: the texts to inspect the embedder on (UTF-8, one per line)');
  if (!existsSync(o.data) || statSync(o.data).isDirectory()) throw new UserError(`--data ${o.data}: expected a UTF-8 text file, one text per line, for a sentence embedder`);
  const { model, tokenizer } = loadEmbedder(o.model);
  let report: EmbedderInspectReport;
  try {
    report = inspectEmbedder(model, tokenizer, readTextFile(o.data).split('\n'), { seed: o.seed, texts: o.examples, top: o.top });
  } catch (e) {
    throw new UserError(`--data ${o.data}: ${(e as Error).message}`);
  }
  return { report, files: writeEmbedderReport(o.out, report, o.model) };
}

/** A captioner on captioned Fashion-MNIST test canvases, rebuilt as attn caption train made them (its trainer.json's seed). */
function inspectCaptionerDir(o: InspectCliOptions): { report: EncDecInspectReport; files: string[] } {
  const model = loadCaptioner(o.model);
  const data = o.data ?? FASHION_MNIST_DIR;
  if (!existsSync(data) || !statSync(data).isDirectory()) throw new UserError(`--data ${data}: expected the Fashion-MNIST folder (IDX files) the captioner trained on${o.data === undefined ? '; give --data DIR' : ''}`);
  const options = trainedOptions(o.model);
  const { test } = loadCaptionData(data, { trainImages: 1, testImages: Math.max(o.examples * 4, 16), seed: options.seed });
  const report = inspectEncoderDecoder(captionerView(model, test, (idx) => captionTokens(model, test.captions, idx)), { seed: o.seed, examples: o.examples, top: o.top });
  // Each caption word's rollout through cross-attention, over the picture (the class token left out).
  const { height: H, width: W } = test.images;
  const picture = { pixels: test.images.pixels.subarray(report.first * H * W, (report.first + 1) * H * W), height: H, width: W, patch: model.config.image.patch_size };
  const overlay = encodePng(attentionOverlay(picture, report.rollout.cross.map((row) => row.slice(1)), 6));
  const files = writeEncDecReport(o.out, report, o.model, { model: 'A captioner (ViT encoder, text decoder)', source: 'Source: the class token, then the patches in reading order', target: 'Caption read by the decoder (BOS first)' }, { 'rollout_over_image.png': overlay });
  return { report, files };
}

export function runInspect(o: InspectCliOptions): { report: InspectReport | ViTInspectReport | EncDecInspectReport | PointCloudInspectReport | EmbedderInspectReport; files: string[] } {
  if (o.top < 1) throw new UserError('--top must be ≥ 1');
  if (o.examples < 4) throw new UserError('--examples must be ≥ 4 (¼ of them score the probes)');
  const type = modelType(o.model);
  if (type === VIT_MODEL_TYPE) {
    useBackend(o);
    return inspectViTDir(o);
  }
  if (type === CAPTIONER_MODEL_TYPE) {
    useBackend(o);
    return inspectCaptionerDir(o);
  }
  if (type === POINT_TRANSFORMER_MODEL_TYPE) {
    useBackend(o);
    return inspectPointCloudDir(o);
  }
  if (type === EMBEDDER_TYPE) {
    useBackend(o);
    return inspectEmbedderDir(o);
  }
  if (type === SEQ2SEQ_MODEL_TYPE) {
    useBackend(o);
    return inspectSeq2SeqDir(o);
  }
  if (o.windows < 4) throw new UserError('--windows must be ≥ 4 (¼ of them score the probes)');
  if (o.length !== undefined && o.length < 2) throw new UserError('--length must be ≥ 2');
  if (o.mapLength < 2) throw new UserError('--map-length must be ≥ 2');
  useBackend(o);
  const { model, tokenizer } = loadInspectable(o.model);
  if (!tokenizer) throw new UserError(`${o.model} has no tokenizer, so the text cannot be encoded`);
  const { path, text } = textFor(o);
  let report: InspectReport;
  try {
    report = inspectDecoder(model, tokenizer, text, { seed: o.seed, windows: o.windows, mapLength: o.mapLength, top: o.top, ...(o.length !== undefined ? { length: o.length } : {}) });
  } catch (e) {
    throw new UserError(`--data ${path}: ${(e as Error).message}`);
  }
  return { report, files: writeInspectReport(o.out, report, o.model) };
}

export function inspectCommand(): Command {
  return withBackendFlags(new Command('inspect'))
    .description(`look inside a trained model: attention maps per layer and head, attention rollout, the validation loss without each head, the logit lens and linear probes per layer; writes PNGs and index.html (supports ${INSPECTABLE})`)
    .requiredOption('--model <dir>', 'model directory')
    .option('--data <file>', 'UTF-8 text to inspect on (default: the training text trainer.json names); its last tenth is the validation part. For a ViT: the image folder (as for attn vit eval), whose test images are used. For a point-cloud classifier: a folder of point files (as for attn pointcloud eval). For a sentence embedder: a text file, one text per line')
    .requiredOption('--out <dir>', 'directory for index.html, report.json and the PNGs')
    .option('--seed <n>', 'seed for the choice of validation windows (same seed, same tables)', seed, 0)
    .option('--windows <n>', 'validation windows', int, 16)
    .option('--length <n>', 'tokens per window (default: the block size, at most 128)', int)
    .option('--map-length <n>', 'tokens shown in the attention maps', int, 24)
    .option('--top <n>', 'costliest heads to highlight', int, 3)
    .option('--images <n>', 'ViT: test images for head removal and the class token by layer', int, 64)
    .option('--examples <n>', 'translation models, captioners, point-cloud classifiers and embedders: validation (test) examples (texts) for head removal, the lens and the probes', int, 32)
    .option('--task <name>', 'point-cloud classifiers: inspect on the generated test clouds of this task (shapes; regenerated from the training seed) instead of --data DIR')
    .action((o: InspectCliOptions) => {
      checkDirPath(o.out); // before the work: the report's folder may not be a file
      const { report, files } = runInspect(o);
      process.stdout.write(summaryLines(report).join('\n') + '\n');
      process.stdout.write(`wrote ${files.length} files to ${o.out} (open ${join(o.out, 'index.html')})\n`);
    });
}

/** x to d decimals, without the sign of a value that rounds to zero (1 − cosine of equal vectors can be −1e-8). */
const fixed = (x: number, d: number): string => {
  const s = x.toFixed(d);
  return /^-0\.0*$/.test(s) ? s.slice(1) : s;
};

const change = (v: number, base: number): string => `${fixed(v, 4)} (${v - base >= 0 ? '+' : ''}${fixed(v - base, 4)})`;

/** The report's main numbers, for the terminal. */
function summaryLines(report: InspectReport | ViTInspectReport | EncDecInspectReport | PointCloudInspectReport | EmbedderInspectReport): string[] {
  const lines: string[] = [];
  const r = report.removal;
  if ('kinds' in r) {
    const e = report as EncDecInspectReport;
    lines.push(`validation loss ${fixed(r.baseline, 4)} (${e.examples} examples, seed ${e.seed})`);
    for (const kind of ATTENTION_KINDS) {
      lines.push(`loss without each ${kind} head (layer.head: loss, change):`);
      r.kinds[kind].loss.forEach((row, l) => lines.push('  ' + row.map((v, h) => `${l + 1}.${h + 1}: ${change(v, r.baseline)}`).join('   ')));
    }
    lines.push(`costliest heads: ${r.costliest.map(([k, l, h]) => `${k} ${l + 1}.${h + 1}`).join(', ')}`);
  } else {
    const on = 'texts' in report ? `${report.texts} texts; 1 − cosine to the intact vectors` : 'clouds' in report ? `${report.clouds} test clouds` : 'kind' in report ? `${(report as ViTInspectReport).images} test images` : `${(report as InspectReport).windows} windows of ${(report as InspectReport).length} tokens`;
    lines.push(`${'texts' in report ? 'vector change' : 'kind' in report ? 'test' : 'validation'} loss ${fixed(r.baseline, 4)} (${on}, seed ${report.seed})`);
    lines.push('loss without each head (layer.head: loss, change):');
    r.loss.forEach((row, l) => lines.push('  ' + row.map((v, h) => `${l + 1}.${h + 1}: ${change(v, r.baseline)}`).join('   ')));
    lines.push(`costliest heads: ${r.costliest.map(([l, h]) => `${l + 1}.${h + 1}`).join(', ')}`);
  }
  lines.push(`logit lens loss by layer: ${report.lens.map((x) => `${x.name} ${fixed(x.loss, 3)}`).join(', ')}`);
  if ('kind' in report) lines.push(`${'kinds' in r ? 'top-1' : 'texts' in report ? 'finds its own text' : 'class token'} accuracy by layer: ${report.lens.map((x) => `${x.name} ${(100 * x.accuracy).toFixed(1)}%`).join(', ')}`);
  return lines;
}
