/**
 * JSON lines appended to a file that rotates by size: when the next write would take `path` past `maxBytes`,
 * `path` becomes `path.1`, `path.1` becomes `path.2`, …, and the oldest beyond `maxFiles` (the live file counts)
 * is deleted. Disk use is therefore at most maxBytes × maxFiles (a single line longer than maxBytes gets a file
 * of its own). The file is opened in append mode, so an appliance restart continues it.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import type { LogQueue } from '../queue.js';
import type { LogSink } from './sink.js';
import { takeLines } from './take.js';

/** Bytes written by one write() call (256 KiB). */
export const FILE_CHUNK_BYTES = 256 * 1024;

export interface RotatingFileOptions {
  path: string;
  /** Size at which the live file rotates, bytes. */
  maxBytes: number;
  /** Files kept, the live one included (≥ 1). */
  maxFiles: number;
}

export class RotatingFileSink implements LogSink {
  readonly name = 'file';
  readonly lingerMs = 0;
  readonly batchBytes = 0;
  private fh: FileHandle | null = null;
  private size = 0;
  private lines = 0;
  private bytes = 0;
  private rotations = 0;

  constructor(private readonly options: RotatingFileOptions) {
    if (options.maxFiles < 1 || options.maxBytes < 1) throw new RangeError('maxFiles and maxBytes must be ≥ 1');
  }

  async drain(queue: LogQueue): Promise<void> {
    const fh = this.fh ?? (await this.openLive());
    const room = this.size === 0 ? this.options.maxBytes : this.options.maxBytes - this.size;
    const first = queue.peek();
    if (first === undefined) return;
    if (this.size > 0 && first.bytes + 1 > room) {
      await this.rotate();
      return this.drain(queue);
    }
    const { text, count, bytes } = takeLines(queue, Math.min(FILE_CHUNK_BYTES, room));
    await fh.write(text);
    this.size += bytes;
    this.lines += count;
    this.bytes += bytes;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }

  stats(): Record<string, number> {
    return { lines: this.lines, bytes: this.bytes, rotations: this.rotations, fileBytes: this.size };
  }

  private async openLive(): Promise<FileHandle> {
    const fh = await open(this.options.path, 'a');
    this.size = (await fh.stat()).size;
    this.fh = fh;
    return fh;
  }

  private async rotate(): Promise<void> {
    await this.close();
    const { path, maxFiles } = this.options;
    if (maxFiles === 1) {
      await unlinkIfPresent(path);
    } else {
      await unlinkIfPresent(`${path}.${maxFiles - 1}`);
      for (let i = maxFiles - 2; i >= 1; i--) await renameIfPresent(`${path}.${i}`, `${path}.${i + 1}`);
      await rename(path, `${path}.1`);
    }
    this.rotations++;
    await this.openLive();
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

async function renameIfPresent(from: string, to: string): Promise<void> {
  await rename(from, to).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
