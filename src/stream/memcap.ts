/**
 * One per-worker memory budget shared by every stream of the worker (Suricata's stream.reassembly.memcap). Streams
 * reserve before they copy and release when they free; a refused reservation is the caller's MEMCAP exception.
 */
import { STREAM_MEMCAP_BYTES } from './options.js';

export class StreamMemcap {
  readonly limitBytes: number;
  usedBytes = 0;
  /** Reservations refused since creation. */
  refusals = 0;

  constructor(limitBytes: number = STREAM_MEMCAP_BYTES) {
    this.limitBytes = limitBytes;
  }

  /** Takes `bytes` from the budget; false (and nothing taken) when that would exceed the limit. */
  reserve(bytes: number): boolean {
    if (this.usedBytes + bytes > this.limitBytes) {
      this.refusals++;
      return false;
    }
    this.usedBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    this.usedBytes -= bytes;
  }
}
