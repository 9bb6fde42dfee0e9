/**
 * One per-worker memory budget shared by every stream of the worker (Suricata's stream.reassembly.memcap). Streams
 * reserve before they copy and release when they free; a refused reservation is the caller's MEMCAP exception.
 */
import { STREAM_MEMCAP_BYTES } from './options.js';

/**
 * Free full-size retain pages kept for reuse per worker (64 × 16 KiB = 1 MiB, not charged to the memcap): a page
 * allocation (allocUnsafeSlow) per 16 KiB of a fast transfer otherwise dominates the cost of retaining.
 */
export const STREAM_PAGE_POOL_MAX = 64;

export class StreamMemcap {
  readonly limitBytes: number;
  usedBytes = 0;
  /** Free retain pages of STREAM_RETAIN_PAGE_MAX_BYTES, at most STREAM_PAGE_POOL_MAX. */
  readonly pagePool: Buffer[] = [];
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
