/**
 * JSON lines on stdout, for container log drivers (docker, ECS awslogs/FireLens). Writes up to
 * STDOUT_CHUNK_BYTES at a time and waits for 'drain' when the pipe is full; while it waits, the router's queue
 * (bounded) takes the new events, and drops are counted there.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { LogQueue } from '../queue.js';
import type { LogSink } from './sink.js';
import { takeLines } from './take.js';

/** Bytes handed to one write() call (64 KiB). */
export const STDOUT_CHUNK_BYTES = 64 * 1024;

export class StdoutSink implements LogSink {
  readonly name = 'stdout';
  readonly lingerMs = 0;
  readonly batchBytes = 0;
  private lines = 0;
  private bytes = 0;

  constructor(private readonly out: Writable = process.stdout) {}

  async drain(queue: LogQueue): Promise<void> {
    const { text, count, bytes } = takeLines(queue, STDOUT_CHUNK_BYTES);
    if (count === 0) return;
    this.lines += count;
    this.bytes += bytes;
    if (!this.out.write(text)) await once(this.out, 'drain');
  }

  async close(): Promise<void> {}

  stats(): Record<string, number> {
    return { lines: this.lines, bytes: this.bytes };
  }
}
