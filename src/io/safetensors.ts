/**
 * safetensors files: the thin file-system part over the pure codec
 * (safetensors_codec.ts, which the browser page uses too). Node code imports
 * the format from here: the codec's names and the three file functions.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { headerSize, parseSafetensors, parseSafetensorsHeader, SafetensorsError, serializeSafetensors, type SafetensorsFile, type TensorCollection, type TensorHeader } from './safetensors_codec.js';

export * from './safetensors_codec.js';

/** Reads and parses a file; I/O failures become SafetensorsError too, so callers need one catch. */
export function readSafetensors(path: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new SafetensorsError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

/**
 * Reads only a file's header (names, dtypes, shapes), without its data: a
 * loader checks a config's sizes against it before allocating anything.
 */
export function readSafetensorsHeader(path: string): Map<string, TensorHeader> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new SafetensorsError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const fileLength = fstatSync(fd).size;
    const first8 = new Uint8Array(8);
    const got = readSync(fd, first8, 0, 8, 0);
    const size = Math.min(headerSize(first8.subarray(0, got), path), fileLength);
    const bytes = new Uint8Array(size);
    readSync(fd, bytes, 0, size, 0);
    return parseSafetensorsHeader(bytes, fileLength, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes atomically (temp file, fsync, rename) so a crash or a concurrent
 * reader never observes a half-written checkpoint.
 */
export function writeSafetensors(path: string, tensors: TensorCollection, metadata?: Record<string, string>): void {
  const bytes = serializeSafetensors(tensors, metadata); // validate before touching the disk
  try {
    writeFileAtomic(path, bytes);
  } catch (err) {
    throw new SafetensorsError(`cannot write ${path}: ${(err as Error).message}`);
  }
}
