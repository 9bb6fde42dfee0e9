/**
 * The key of the DLP findings' keyed hash (HMAC-SHA-256, docs/dlp.md §What is logged). Equal values give equal
 * hashes under one key, so an operator can correlate findings (the same card in two flows) without the log holding
 * the value; without the key the hash cannot be tested against guesses (a card number has few enough possible
 * values that a plain hash would be reversible).
 *
 * --dlp-hash-key-file names a file holding the key: at least DLP_HASH_KEY_MIN_BYTES bytes after trimming
 * surrounding whitespace (hex, base64 or any bytes: the file's bytes are the key). Unset: a random key per process
 * start, so hashes correlate within one run only (and differ between workers' restarts).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const DLP_HASH_KEY_MIN_BYTES = 32;
export const DLP_HASH_KEY_MAX_BYTES = 4096;

export class DlpHashKeyError extends Error {
  readonly code = 'DLP_HASH_KEY';
}

/** The key from `file`, or a fresh random one when `file` is empty. */
export function loadDlpHashKey(file: string): Buffer {
  if (file === '') return randomBytes(DLP_HASH_KEY_MIN_BYTES);
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e) {
    throw new DlpHashKeyError(`--dlp-hash-key-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let a = 0;
  let b = raw.length;
  const ws = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  while (a < b && ws(raw[a]!)) a++;
  while (b > a && ws(raw[b - 1]!)) b--;
  const key = raw.subarray(a, b);
  if (key.length < DLP_HASH_KEY_MIN_BYTES || key.length > DLP_HASH_KEY_MAX_BYTES) {
    throw new DlpHashKeyError(`--dlp-hash-key-file ${file}: the key must be ${DLP_HASH_KEY_MIN_BYTES}–${DLP_HASH_KEY_MAX_BYTES} bytes, it has ${key.length}`);
  }
  return Buffer.from(key);
}

/** `hmac-sha256:<hex>` of `value` (UTF-8) under `key`. */
export function keyedHash(key: Buffer, value: string): string {
  return `hmac-sha256:${createHmac('sha256', key).update(value, 'utf8').digest('hex')}`;
}
