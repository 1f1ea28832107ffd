/**
 * The article's pages, in reading order. A page is a file in web/pages/ that
 * names its section and the example to open, and draws that example's
 * numbers; to add one, write the file and list it here.
 */
export interface ArticlePage {
  /** The URL fragment: article.html#softmax. */
  id: string;
  /** The article's section title. */
  title: string;
  /** The example file that computes what the page shows. */
  file: string;
  render(root: HTMLElement): void;
}

import { captioningPage } from './captioning.js';
import { dropoutPage } from './dropout.js';
import { embeddingsPage } from './embeddings.js';
import { encoderDecoderPage } from './encoder_decoder.js';
import { gptPage } from './gpt_architecture.js';
import { humptyPage } from './humpty_dumpty.js';
import { layerNormPage } from './layer_norm.js';
import { multiHeadPage } from './multi_head_attention.js';
import { networkPage } from './network.js';
import { positionsPage } from './positional_encoding.js';
import { residualPage } from './residual.js';
import { selfAttentionPage } from './self_attention.js';
import { softmaxPage } from './softmax.js';
import { subwordPage } from './subword_tokenizer.js';
import { trainingPage } from './training.js';

export const PAGES: ArticlePage[] = [
  networkPage, trainingPage, humptyPage, embeddingsPage, subwordPage, selfAttentionPage, softmaxPage,
  residualPage, layerNormPage, dropoutPage, multiHeadPage, positionsPage, gptPage, encoderDecoderPage,
  captioningPage,
];
