/**
 * One direction of a TCP connection reassembled into stream order (docs/architecture.md, "Stream reassembly and
 * HTTP objects"). Design after Suricata's stream-tcp (a per-direction segment list, progress offsets, memcaps
 * with exception policies) and gopacket's reassembly (callbacks per stream, pages only for out-of-order data).
 *
 *                 delivered (progress; the future "cleared" contract reads it)
 *   retainStart        │          pending (out-of-order copies, sorted, disjoint)
 *        │             │      ┌──────┐   ┌────┐
 *   ─────┼─ retained ──┼ hole ┤ seg  ├───┤seg ├──  ... ≤ min(window right edge, delivered + maxAheadBytes)
 *        │ (delivered, │      └──────┘   └────┘
 *        │  not acked) │
 *   acked ≤ retainStart
 *
 * Offsets are byte counts from ISN+1 (53-bit numbers); sequence numbers are turned into offsets through one anchor
 * (nextSeq ↔ delivered) with wrap-safe 32-bit differences (seq.ts, RFC 9293 §3.4).
 *
 * - In-order bytes go to the consumer at once, as a view of the caller's buffer when nothing is pending before
 *   them; only out-of-order bytes are copied into `pending` (and delivered bytes into `retained`, see below).
 * - Overlaps: first bytes win. An overlap is compared with the pending copy, or, for bytes already delivered, with
 *   the retained copy; differing bytes are the OVERLAP_DIFFERENT_DATA anomaly and options.onOverlapDifferent.
 *   Delivered bytes are retained until the receiver acknowledges them (bounded by retainMaxBytes and the memcap),
 *   because until then a retransmission may still reach the receiver with other bytes than those inspected. Once
 *   acknowledged, a retransmission is discarded by the receiver (RFC 9293 §3.10.7.4) and needs no comparison.
 * - Holes: a hole is waited for up to holeWaitBytes of pending bytes behind it or holeWaitMs; then the HOLE
 *   anomaly and options.onHole: 'skip' delivers a gap event and goes on, 'stop' ends the direction (STREAM_END.GAP).
 * - Bounds, each an anomaly with an exception action: bytes beyond the receive window (or maxAheadBytes ahead when
 *   the window is unknown), a full out-of-order buffer, the per-worker memcap. depthBytes ends inspection (DEPTH).
 * - FIN: the end event comes once every byte before the FIN's sequence number is delivered. RST: handled by the
 *   owner (tcp-stream.ts), which calls reset().
 */
import {
  anomalyCounter,
  SEGMENT_RESULT,
  STREAM_ANOMALY,
  STREAM_COUNTER,
  STREAM_END,
  type SegmentResult,
  type StreamAnomaly,
  type StreamConsumer,
  type StreamEndReason,
} from './events.js';
import { STREAM_PAGE_POOL_MAX, type StreamMemcap } from './memcap.js';
import {
  STREAM_CHUNK_OVERHEAD_BYTES,
  STREAM_RETAIN_PAGE_MAX_BYTES,
  STREAM_RETAIN_PAGE_MIN_BYTES,
  STREAM_WINDOW_SLACK_BYTES,
  type StreamOptions,
} from './options.js';
import { seqAdd, seqDiff } from './seq.js';

export const DIRECTION_STATE = {
  /** No anchor yet: neither a SYN nor a first segment was seen. */
  NEW: 0,
  OPEN: 1,
  /** Ended (FIN delivered, RST, depth, gap stop, closed): later segments are accepted and ignored. */
  ENDED: 2,
} as const;
export type DirectionState = (typeof DIRECTION_STATE)[keyof typeof DIRECTION_STATE];

/**
 * Backing store for retained copies (after gopacket's page pools): delivered bytes are appended to the current
 * page of their direction, so a retained segment costs a copy, not an allocation. Retained chunks are freed in
 * offset order, so a page dies when its last chunk is trimmed. The memcap is charged whole pages (exact memory).
 */
class RetainPage {
  readonly buf: Buffer;
  used = 0;
  /** Retained chunks still pointing into this page. */
  live = 0;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
}

/** A stored copy of bytes [off, off + buf.length) of the stream. */
class Chunk {
  off: number;
  buf: Uint8Array;
  /** Accounting size: bytes plus STREAM_CHUNK_OVERHEAD_BYTES, fixed when the chunk is stored. */
  readonly cost: number;
  /** The retain page holding the bytes, or null when the chunk owns them (an out-of-order copy). */
  readonly page: RetainPage | null;
  constructor(off: number, buf: Uint8Array, page: RetainPage | null) {
    this.off = off;
    this.buf = buf;
    this.cost = buf.length + STREAM_CHUNK_OVERHEAD_BYTES;
    this.page = page;
  }
  get end(): number {
    return this.off + this.buf.length;
  }
}

const PASS = 0;
const DROP = 1;
function action(a: 'pass' | 'drop'): number {
  return a === 'drop' ? DROP : PASS;
}

export class StreamDirection {
  state: DirectionState = DIRECTION_STATE.NEW;
  /** Picked up without a SYN (degraded mode: docs/architecture.md). */
  midstream = false;
  /** Stream offset up to which bytes were delivered or skipped as gaps. */
  delivered = 0;
  /** Sequence number of the byte at `delivered`. */
  nextSeq = 0;
  /** Highest offset the receiver acknowledged. */
  acked = 0;
  /** Highest right edge of the receive window (offset), −1 while unknown. */
  windowRight = -1;
  /** Offset of the FIN (the offset just past the last byte), −1 until a FIN is seen. */
  finOffset = -1;
  /** Bytes (with per-chunk overhead) held in pending and retained: what oooMaxBytes and retainMaxBytes bound. */
  pendingBytes = 0;
  retainedBytes = 0;
  /** Bytes this direction holds reserved from the memcap (pending chunks, retain pages). */
  memReserved = 0;
  private page: RetainPage | null = null;
  /** Size of the next retain page: doubles from STREAM_RETAIN_PAGE_MIN_BYTES to STREAM_RETAIN_PAGE_MAX_BYTES. */
  private pageBytes = STREAM_RETAIN_PAGE_MIN_BYTES;
  /** Monotonic ms since when the direction waits for a hole, −1 when it does not. */
  holeSinceMs = -1;
  /** The delivered offset when the current wait began: progress restarts the wait (the byte bound still holds). */
  private holeAt = -1;

  private readonly pending: Chunk[] = [];
  private readonly retained: Chunk[] = [];
  private readonly opts: StreamOptions;
  private readonly memcap: StreamMemcap;
  private readonly counters: Float64Array;
  private readonly consumer: StreamConsumer;
  private readonly onOverlap: number;
  private readonly onOooFull: number;
  private readonly onMemcap: number;
  private readonly onWindow: number;
  /** The worst exception action met while handling the current segment. */
  private result = PASS;

  constructor(opts: StreamOptions, memcap: StreamMemcap, counters: Float64Array, consumer: StreamConsumer) {
    this.opts = opts;
    this.memcap = memcap;
    this.counters = counters;
    this.consumer = consumer;
    this.onOverlap = action(opts.onOverlapDifferent);
    this.onOooFull = action(opts.onOooFull);
    this.onMemcap = action(opts.onMemcap);
    this.onWindow = action(opts.onOutOfWindow);
  }

  /** Anchors offset 0 at sequence number `seq` (ISN+1 after a SYN; the first seen byte in midstream mode). */
  start(seq: number, midstream: boolean): void {
    this.state = DIRECTION_STATE.OPEN;
    this.midstream = midstream;
    this.nextSeq = seq >>> 0;
    this.delivered = 0;
    this.acked = 0;
    this.windowRight = -1;
    this.finOffset = -1;
    this.holeSinceMs = -1;
    if (midstream) this.anomaly(STREAM_ANOMALY.MIDSTREAM, 0);
  }

  /** Stream offset of sequence number `seq` (meaningful once started). */
  offsetOf(seq: number): number {
    return this.delivered + seqDiff(seq, this.nextSeq);
  }

  /** Exclusive upper bound on the offsets a segment may carry now. */
  aheadLimit(): number {
    const far = this.delivered + this.opts.maxAheadBytes;
    return this.windowRight >= 0 ? Math.min(far, this.windowRight + STREAM_WINDOW_SLACK_BYTES) : far;
  }

  /**
   * The peer acknowledged up to `ackSeq` and advertised `windowBytes` (already scaled; −1 when unknown) of receive
   * window: frees retained bytes below the acknowledgment and raises the window's right edge.
   */
  ack(ackSeq: number, windowBytes: number): void {
    if (this.state !== DIRECTION_STATE.OPEN) return;
    const a = this.offsetOf(ackSeq);
    // An ACK more than 2^31 away, or for bytes not yet seen, moves nothing: only what passed us can be acked here.
    if (a > this.acked && a <= this.delivered) {
      this.acked = a;
      this.trimRetained();
    }
    if (windowBytes >= 0 && a + windowBytes > this.windowRight) this.windowRight = a + windowBytes;
  }

  /**
   * A segment of this direction: `len` payload bytes of `data` from `off`, at sequence number `seq` (the sequence
   * number of its first payload byte); `fin` when it carries FIN. Returns the exception policy's verdict.
   */
  segment(seq: number, data: Uint8Array, off: number, len: number, fin: boolean, nowMs: number): SegmentResult {
    if (this.state !== DIRECTION_STATE.OPEN) return SEGMENT_RESULT.ACCEPT;
    this.result = PASS;
    this.counters[STREAM_COUNTER.SEGMENTS]!++;
    const s = this.offsetOf(seq);
    // Offsets are signed 32-bit distances from nextSeq, so s < 0 means "before ISN+1" only while fewer than 2^31
    // bytes were delivered; past that, s is never negative.
    if (s < 0 && len > 0 && !this.midstream) {
      this.anomaly(STREAM_ANOMALY.BEFORE_START, 0);
      this.counters[STREAM_COUNTER.SEGMENTS_DROP]!++;
      return SEGMENT_RESULT.DROP;
    }
    let e = s + len;
    const limit = this.aheadLimit();
    // A FIN past the window is not acceptable to the receiver (RFC 9293 §3.10.7.4) and so ends nothing here.
    if (fin && e <= limit) {
      if (this.finOffset < 0 && e >= this.delivered) {
        this.finOffset = e;
        // Bytes buffered earlier past the FIN: the receiver will not take them either.
        const last = this.pending[this.pending.length - 1];
        if (last !== undefined && last.end > e) this.anomaly(STREAM_ANOMALY.DATA_AFTER_FIN, e);
      } else if (e !== this.finOffset) this.anomaly(STREAM_ANOMALY.DATA_AFTER_FIN, e);
    }
    if (this.finOffset >= 0 && e > this.finOffset) {
      if (!fin) this.anomaly(STREAM_ANOMALY.DATA_AFTER_FIN, this.finOffset);
      e = Math.max(s, this.finOffset);
    }
    if (e > limit) {
      this.anomaly(this.windowRight >= 0 ? STREAM_ANOMALY.BEYOND_WINDOW : STREAM_ANOMALY.TOO_FAR_AHEAD, Math.max(s, limit));
      this.raise(this.onWindow);
      e = Math.max(s, limit);
    }
    if (e > s) {
      let pos = s;
      if (pos < this.delivered) {
        const oldEnd = Math.min(e, this.delivered);
        this.compareRetained(data, off - s, pos, oldEnd);
        pos = oldEnd;
      }
      if (pos < e) this.walk(data, off - s, pos, e);
    }
    this.checkHole(nowMs);
    this.checkFin();
    if (this.result === DROP) this.counters[STREAM_COUNTER.SEGMENTS_DROP]!++;
    return this.result === DROP ? SEGMENT_RESULT.DROP : SEGMENT_RESULT.ACCEPT;
  }

  /**
   * Moves past `len` bytes at `seq` without delivering or retaining them, for a consumer that does not need them
   * (the firewall skipping an HTTP body it only frames). Only the next bytes in order, with nothing pending and no
   * FIN seen, qualify: anything else must go through segment(). Skipped bytes count as delivered offsets, so a
   * retransmission of them is old data (compared only where retained, which skipped bytes are not).
   */
  skip(seq: number, len: number): boolean {
    if (this.state !== DIRECTION_STATE.OPEN || this.pending.length !== 0 || this.finOffset >= 0 || seq >>> 0 !== this.nextSeq) return false;
    if (len <= 0 || this.delivered + len >= this.opts.depthBytes) return len === 0;
    this.counters[STREAM_COUNTER.SEGMENTS]!++;
    this.delivered += len;
    this.nextSeq = seqAdd(this.nextSeq, len);
    return true;
  }

  /** An anomaly the owner (tcp-stream.ts) found in this direction's headers. */
  reportAnomaly(code: StreamAnomaly): void {
    this.anomaly(code, this.delivered);
  }

  /** Applies the hole timer at `nowMs` (call from the owner's timer as well as per segment). */
  poll(nowMs: number): void {
    if (this.state !== DIRECTION_STATE.OPEN) return;
    this.checkHole(nowMs);
    this.checkFin();
  }

  /** An acceptable RST: ends the direction; bytes not yet delivered are discarded. */
  reset(): void {
    if (this.state !== DIRECTION_STATE.OPEN) return;
    this.counters[STREAM_COUNTER.ENDS_RST]!++;
    this.end(STREAM_END.RST);
  }

  /** The owner is done with the stream (flow expired or evicted): frees its memory, ends with CLOSED if open. */
  close(): void {
    if (this.state === DIRECTION_STATE.OPEN) this.end(STREAM_END.CLOSED);
    this.state = DIRECTION_STATE.ENDED;
    this.freeAll();
  }

  /** Bytes of `data` (index = offset + base) in [pos, e), all at or after `delivered`, merged with `pending`. */
  private walk(data: Uint8Array, base: number, pos: number, e: number): void {
    // First pass: bytes covered by pending copies are compared (first bytes win) before anything moves.
    for (let i = this.firstPendingEndingAfter(pos); i < this.pending.length; i++) {
      const c = this.pending[i] as Chunk;
      if (c.off >= e) break;
      const from = Math.max(pos, c.off);
      this.compare(data, base + from, c.buf, from - c.off, Math.min(e, c.end) - from, from);
    }
    // Second pass: uncovered bytes are delivered (at `delivered`) or copied (ahead of it), in offset order.
    while (pos < e && this.state === DIRECTION_STATE.OPEN) {
      if (pos < this.delivered) {
        // Delivered meanwhile from pending copies, which the first pass compared.
        pos = Math.min(e, this.delivered);
        continue;
      }
      const i = this.firstPendingEndingAfter(pos);
      const c = this.pending[i];
      if (c !== undefined && c.off <= pos) {
        pos = Math.min(e, c.end);
        continue;
      }
      const to = c === undefined ? e : Math.min(c.off, e);
      if (pos === this.delivered) {
        this.deliver(data, base + pos, to - pos);
        this.drain();
      } else {
        this.buffer(data, base + pos, pos, to - pos, i);
      }
      pos = to;
    }
  }

  /** Index of the first pending chunk whose end is after `pos` (pending.length when none). */
  private firstPendingEndingAfter(pos: number): number {
    const p = this.pending;
    let lo = 0;
    let hi = p.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((p[mid] as Chunk).end <= pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Copies out-of-order bytes into pending at index `i`, within the buffer bound and the memcap. */
  private buffer(data: Uint8Array, from: number, off: number, len: number, i: number): void {
    const need = len + STREAM_CHUNK_OVERHEAD_BYTES;
    if (this.pendingBytes + need > this.opts.oooMaxBytes) {
      this.anomaly(STREAM_ANOMALY.OOO_BUFFER_FULL, off);
      this.raise(this.onOooFull);
      return;
    }
    if (!this.reserve(need)) {
      this.anomaly(STREAM_ANOMALY.MEMCAP, off);
      this.raise(this.onMemcap);
      return;
    }
    const copy = Buffer.allocUnsafeSlow(len);
    copy.set(data.subarray(from, from + len));
    this.pending.splice(i, 0, new Chunk(off, copy, null));
    this.pendingBytes += need;
    this.counters[STREAM_COUNTER.BYTES_BUFFERED]! += len;
  }

  /** Delivers bytes at `delivered` from the caller's buffer (a view), up to the depth. */
  private deliver(data: Uint8Array, from: number, len: number): void {
    const n = Math.min(len, this.opts.depthBytes - this.delivered);
    const view = from === 0 && n === data.length ? data : data.subarray(from, from + n);
    const at = this.delivered;
    this.advance(n);
    this.consumer.onData(view, at);
    if (this.state !== DIRECTION_STATE.OPEN) return;
    this.retainCopy(view, at);
    if (this.delivered >= this.opts.depthBytes) this.depthReached();
  }

  /** Delivers the pending chunks that are now contiguous with `delivered`, moving them to retained. */
  private drain(): void {
    while (this.state === DIRECTION_STATE.OPEN) {
      const c = this.pending[0];
      if (c === undefined || c.off > this.delivered) break;
      this.pending.shift();
      this.pendingBytes -= c.cost;
      if (c.end <= this.delivered) {
        this.unreserve(c.cost);
        continue;
      }
      if (c.off < this.delivered) c.buf = c.buf.subarray(this.delivered - c.off);
      c.off = this.delivered;
      const n = Math.min(c.buf.length, this.opts.depthBytes - this.delivered);
      const at = this.delivered;
      this.advance(n);
      this.consumer.onData(n === c.buf.length ? c.buf : c.buf.subarray(0, n), at);
      if (this.state !== DIRECTION_STATE.OPEN) return;
      if (this.opts.retainMaxBytes === 0) {
        this.unreserve(c.cost);
        continue;
      }
      this.retained.push(c);
      this.retainedBytes += c.cost;
      this.trimRetained();
      if (this.delivered >= this.opts.depthBytes) this.depthReached();
    }
  }

  private advance(n: number): void {
    this.delivered += n;
    this.nextSeq = seqAdd(this.nextSeq, n);
    this.counters[STREAM_COUNTER.BYTES_DELIVERED]! += n;
  }

  /** Keeps a copy of delivered bytes until acknowledged (bounded by retainMaxBytes and the memcap). */
  private retainCopy(view: Uint8Array, at: number): void {
    const n = view.length;
    if (this.opts.retainMaxBytes === 0 || n === 0) return;
    let page = this.page;
    if (page === null || page.used + n > page.buf.length) {
      const bytes = Math.max(n, this.pageBytes);
      if (!this.reserve(bytes)) {
        this.counters[STREAM_COUNTER.RETAIN_SKIPPED_BYTES]! += n;
        return;
      }
      if (page !== null && page.live === 0) this.freePage(page);
      const pool = this.memcap.pagePool;
      page = new RetainPage(bytes === STREAM_RETAIN_PAGE_MAX_BYTES && pool.length > 0 ? (pool.pop() as Buffer) : Buffer.allocUnsafeSlow(bytes));
      this.page = page;
      this.pageBytes = Math.min(STREAM_RETAIN_PAGE_MAX_BYTES, this.pageBytes * 2);
    }
    page.buf.set(view, page.used);
    const copy = page.buf.subarray(page.used, page.used + n);
    page.used += n;
    page.live++;
    const c = new Chunk(at, copy, page);
    this.retained.push(c);
    this.retainedBytes += c.cost;
    this.trimRetained();
  }

  /** A page no chunk points into: its bytes go back to the memcap, a full-size one to the worker's pool. */
  private freePage(page: RetainPage): void {
    this.unreserve(page.buf.length);
    const pool = this.memcap.pagePool;
    if (page.buf.length === STREAM_RETAIN_PAGE_MAX_BYTES && pool.length < STREAM_PAGE_POOL_MAX) pool.push(page.buf);
  }

  /** Frees retained chunks that are acknowledged, or the oldest beyond retainMaxBytes. */
  private trimRetained(): void {
    const r = this.retained;
    while (r.length > 0) {
      const c = r[0] as Chunk;
      if (c.end > this.acked && this.retainedBytes <= this.opts.retainMaxBytes) break;
      r.shift();
      this.retainedBytes -= c.cost;
      const page = c.page;
      if (page === null) this.unreserve(c.cost);
      else if (--page.live === 0) {
        // A dead page is released, unless it is the current one and still has room (then it is reused).
        if (page !== this.page) this.freePage(page);
        else if (r.length === 0) {
          this.freePage(page);
          this.page = null;
        }
      }
    }
  }

  private reserve(bytes: number): boolean {
    if (!this.memcap.reserve(bytes)) return false;
    this.memReserved += bytes;
    return true;
  }

  private unreserve(bytes: number): void {
    this.memcap.release(bytes);
    this.memReserved -= bytes;
  }

  /** Bytes [pos, end) of `data` (index = offset + base), all before `delivered`: compared where retained. */
  private compareRetained(data: Uint8Array, base: number, pos: number, end: number): void {
    const r = this.retained;
    // Acknowledged bytes: the receiver has them and discards a retransmission; nothing to compare.
    if (pos < this.acked) {
      const to = Math.min(end, this.acked);
      this.counters[STREAM_COUNTER.BYTES_RETRANSMITTED]! += to - pos;
      pos = to;
    }
    let i = 0;
    while (pos < end) {
      while (i < r.length && (r[i] as Chunk).end <= pos) i++;
      const c = r[i];
      if (c === undefined || c.off > pos) {
        const to = c === undefined ? end : Math.min(end, c.off);
        this.counters[STREAM_COUNTER.BYTES_UNVERIFIED]! += to - pos;
        pos = to;
        continue;
      }
      const to = Math.min(end, c.end);
      this.compare(data, base + pos, c.buf, pos - c.off, to - pos, pos);
      pos = to;
    }
  }

  /** Compares n bytes; differing bytes are an anomaly (the stored, first bytes stay). */
  private compare(a: Uint8Array, aFrom: number, b: Uint8Array, bFrom: number, n: number, at: number): void {
    for (let k = 0; k < n; k++) {
      if (a[aFrom + k] !== b[bFrom + k]) {
        this.anomaly(STREAM_ANOMALY.OVERLAP_DIFFERENT_DATA, at + k);
        this.raise(this.onOverlap);
        return;
      }
    }
    this.counters[STREAM_COUNTER.BYTES_RETRANSMITTED]! += n;
  }

  /** Gives up holes that waited too long (options.holeWait*), per options.onHole. */
  private checkHole(nowMs: number): void {
    while (this.state === DIRECTION_STATE.OPEN) {
      const first = this.pending[0];
      const next = first !== undefined ? first.off : this.finOffset > this.delivered ? this.finOffset : -1;
      if (next < 0) {
        this.holeSinceMs = -1;
        return;
      }
      if (this.holeSinceMs < 0 || this.holeAt !== this.delivered) {
        this.holeSinceMs = nowMs;
        this.holeAt = this.delivered;
      }
      const last = this.pending[this.pending.length - 1];
      const waitingBytes = last !== undefined ? last.end - this.delivered : 0;
      if (waitingBytes <= this.opts.holeWaitBytes && nowMs - this.holeSinceMs < this.opts.holeWaitMs) return;
      const at = this.delivered;
      this.anomaly(STREAM_ANOMALY.HOLE, at);
      if (this.opts.onHole === 'stop') {
        this.end(STREAM_END.GAP);
        return;
      }
      const gap = next - at;
      this.delivered = next;
      this.nextSeq = seqAdd(this.nextSeq, gap);
      this.counters[STREAM_COUNTER.GAPS]!++;
      this.counters[STREAM_COUNTER.GAP_BYTES]! += gap;
      this.consumer.onGap(at, gap);
      if (this.delivered >= this.opts.depthBytes) {
        this.depthReached();
        return;
      }
      this.drain();
    }
  }

  private checkFin(): void {
    if (this.state === DIRECTION_STATE.OPEN && this.finOffset >= 0 && this.delivered >= this.finOffset) {
      this.counters[STREAM_COUNTER.ENDS_FIN]!++;
      this.end(STREAM_END.FIN);
    }
  }

  private depthReached(): void {
    this.counters[STREAM_COUNTER.DEPTH_REACHED]!++;
    this.end(STREAM_END.DEPTH);
  }

  private end(reason: StreamEndReason): void {
    this.state = DIRECTION_STATE.ENDED;
    this.holeSinceMs = -1;
    this.freeAll();
    this.consumer.onEnd(this.delivered, reason);
  }

  private freeAll(): void {
    this.memcap.release(this.memReserved);
    this.memReserved = 0;
    this.page = null;
    this.pendingBytes = 0;
    this.retainedBytes = 0;
    this.pending.length = 0;
    this.retained.length = 0;
  }

  private raise(a: number): void {
    if (a > this.result) this.result = a;
  }

  private anomaly(code: StreamAnomaly, offset: number): void {
    this.counters[anomalyCounter(code)]!++;
    this.consumer.onAnomaly(code, offset);
  }
}
