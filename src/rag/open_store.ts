import { resolve } from 'node:path';
import { UserError } from '../util/errors.js';
import { LanceDBStore, storeInfo } from './lancedb_store.js';
import type { StoreInfo } from './store.js';
import { TextEmbedder } from './text_embedder.js';
import { Retriever } from './retriever.js';

/**
 * Opening a store for search: the store, and the embedder that made its
 * vectors (the one recorded in it, or one named: the same model elsewhere, as
 * its weights' fingerprint shows where the store records one). The one place that picks the implementation: a server-based store
 * would be chosen here by the form of the STORE argument.
 */
export async function openRetriever(storeDir: string, embedderDir?: string): Promise<Retriever> {
  const store = await LanceDBStore.open(storeDir);
  try {
    const embedder = TextEmbedder.loadOnBackend(embedderDir ?? store.info.embedder);
    embedder.checkStore(store.info, storeDir);
    return new Retriever(store, embedder);
  } catch (e) {
    store.close();
    throw e;
  }
}

/** Open the store for indexing with `embedder`, creating it (with the embedder's dimensions) when new. */
export async function openForIndexing(storeDir: string, embedder: TextEmbedder): Promise<LanceDBStore> {
  // The embedder's absolute path, so that the store opens from any working directory.
  const info: StoreInfo = { dim: embedder.dim, prefixDim: embedder.prefixDim, embedder: resolve(embedder.dir), embedderFingerprint: embedder.fingerprint() };
  const store = await LanceDBStore.openOrCreate(storeDir, info);
  try {
    embedder.checkStore(store.info, storeDir);
    checkSameEmbedder(store.info.embedder, embedder, storeDir);
  } catch (e) {
    store.close();
    throw e;
  }
  return store;
}

/** The embedder directory a store records, or undefined for a store not made yet. */
export function recordedEmbedder(storeDir: string): string | undefined {
  return storeInfo(storeDir)?.embedder;
}

/**
 * Refuse to add to a store with another embedder than the one it records: the
 * store keeps that one for its queries, so vectors of another model (even of
 * the same dimension) would be searched with the wrong one. The same model
 * elsewhere (a copy, a link) is its own: its weights are compared (checkStore
 * compares them with the fingerprint the store records; a store made before
 * fingerprints were recorded is compared with the model at its path).
 */
function checkSameEmbedder(recorded: string, embedder: TextEmbedder, storeDir: string): void {
  if (resolve(recorded) === resolve(embedder.dir)) return;
  if (storeInfo(storeDir)?.embedderFingerprint === embedder.fingerprint()) return;
  let same = false;
  try {
    same = TextEmbedder.load(recorded).fingerprint() === embedder.fingerprint();
  } catch {
    // The recorded embedder is gone or broken: nothing shows this one is the same model.
  }
  if (!same) throw new UserError(`embedder ${embedder.dir} is not the one store ${storeDir} was indexed with (${recorded}); use that embedder or a new store`);
}
