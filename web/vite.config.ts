// Builds the playground into dist/playground (npm run build:web); `attn web` serves it.
// A plain object, so this file needs nothing but Vite itself to load.
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export default {
  root: here,
  base: './',
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('../dist/playground', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 2000,
    // Two pages: the playground and the article's sections (web/pages/).
    rollupOptions: { input: { index: fileURLToPath(new URL('./index.html', import.meta.url)), article: fileURLToPath(new URL('./article.html', import.meta.url)) } },
  },
  worker: { format: 'es' },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
};
