/**
 * The client's bytes of one TCP connection in sequence order from ISN+1 of the SYN the appliance saw, for reading
 * server names (TLS SNI, HTTP Host). The reassembly is src/stream's TcpStream, the same one the content inspector
 * uses (docs/architecture.md §3.1); this file adds the name buffer the readers parse and the firewall's bounds.
 *
 *   client segment ─> overlap with buf[0, contig) the same? ─ no ─> OVERLAP_DIFFERENT_DATA (refused whole)
 *        │ yes
 *        ▼
 *   TcpStream (direction 0, anchored at ISN+1 by startAt) ─> onData: in-order bytes ─> buf[0, contig): not yet
 *        │ out of order: copied (< window ahead), overlaps compared                    consumed ─> reader.onClientBytes()
 *        └ anomalies ─> `anomaly` (the stage's exception policy)
 *
 * What a server could read differently from the reader is an anomaly, for names.on_anomaly to decide:
 *   - BEFORE_START: a segment starting before ISN+1 (refused whole by the stream; none of its bytes are taken);
 *   - OVERLAP_DIFFERENT_DATA: an overlap whose bytes differ from bytes kept out of order (the stream compares) or
 *     delivered and not yet consumed (compared here with the name buffer, so the stream keeps no second copy).
 * Bounds: a segment more than the window ahead of the delivered bytes, or that does not fit the out-of-order
 * buffer, is not kept (TOO_FAR_AHEAD, OOO_BUFFER_FULL, MEMCAP): the caller drops it and the client sends it again.
 * In-order bytes go to the name buffer in pieces of at most its free room, each read (and consumed) before the next,
 * so the window bounds memory, not what a connection may carry.
 */
import { SEGMENT_RESULT, STREAM_ANOMALY, type SegmentResult, type StreamAnomaly, type StreamConsumer, type StreamEndReason } from '../stream/events.js';
import { StreamMemcap } from '../stream/memcap.js';
import { STREAM_CHUNK_OVERHEAD_BYTES, streamOptions, type StreamOptions } from '../stream/options.js';
import { TcpStream } from '../stream/tcp-stream.js';

/** "Never" for the bounds the firewall does not use (a hole waits; no depth), within StreamOptions' range. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/**
 * Stream options for a name window of `windowBytes` (names.max_bytes): bytes are kept at most the window ahead of
 * the delivered bytes (so out-of-order bytes are fewer than the window), no depth (an HTTP connection is read
 * request after request for its whole life), holes waited for (names.max_wait_ms bounds a waiting flow).
 * The out-of-order and retained bounds count STREAM_CHUNK_OVERHEAD_BYTES per segment: they allow a window's worth
 * of bytes even in 1-byte segments, and the per-worker memcap (nameStreamMemcapBytes) bounds the sum.
 */
export function nameStreamOptions(windowBytes: number): StreamOptions {
  return streamOptions({
    depthBytes: UNBOUNDED,
    oooMaxBytes: windowBytes * (1 + STREAM_CHUNK_OVERHEAD_BYTES),
    // Delivered bytes not yet consumed are in the name buffer, where ClientStream compares overlaps with them: the
    // stream need not keep a second copy.
    retainMaxBytes: 0,
    holeWaitBytes: UNBOUNDED,
    holeWaitMs: UNBOUNDED,
    maxAheadBytes: windowBytes,
    onOverlapDifferent: 'drop',
    onOooFull: 'drop',
    onMemcap: 'drop',
    onOutOfWindow: 'drop',
    onHole: 'skip',
  });
}

/**
 * Memcap of the name streams of one worker: `slots` (names.max_pending_flows) times what one stream holds with
 * segments of ordinary size (out-of-order bytes < window, each stored segment counted with its
 * STREAM_CHUNK_OVERHEAD_BYTES: twice the window). A flood of tiny out-of-order segments over many flows meets it:
 * MEMCAP, and the segment is dropped (the client sends it again).
 */
export function nameStreamMemcapBytes(windowBytes: number, slots: number): number {
  return slots * 2 * windowBytes;
}

/** What reads the contiguous bytes: called after bytes were appended; false to take no more bytes. */
export interface ClientBytesReader {
  onClientBytes(cs: ClientStream): boolean;
}

/** Direction 1 (the server's bytes) is never fed: its consumer hears nothing. */
const NO_CONSUMER: StreamConsumer = {
  onData() {},
  onGap() {},
  onEnd() {},
  onAnomaly() {},
};

export class ClientStream implements StreamConsumer {
  readonly windowBytes: number;
  /** Bytes delivered in order and not consumed yet: buf[0, contig). */
  readonly buf: Uint8Array;
  contig = 0;
  /** The first anomaly the current segment raised, −1 when none. */
  anomaly = -1;
  /** Stream offset of buf[0]: bytes consumed or skipped since ISN+1. */
  private consumed = 0;
  private readonly tcp: TcpStream;
  private readonly reader: ClientBytesReader;
  /** False once the reader declined more bytes, or the stream ended: later bytes are not handed on. */
  private taking = false;

  constructor(windowBytes: number, opts: StreamOptions, memcap: StreamMemcap, counters: Float64Array, reader: ClientBytesReader) {
    this.windowBytes = windowBytes;
    this.buf = new Uint8Array(windowBytes);
    this.reader = reader;
    this.tcp = new TcpStream(opts, memcap, counters, [this, NO_CONSUMER]);
  }

  /** Starts reading a stream whose first byte has sequence number isn1 (ISN+1 of the client's SYN). */
  start(isn1: number): void {
    this.tcp.close();
    this.tcp.startAt(0, isn1);
    this.consumed = 0;
    this.contig = 0;
    this.anomaly = -1;
    this.taking = true;
  }

  /**
   * One client segment: `len` payload bytes of `data` from `off`, the first at sequence number `seq` (after the
   * SYN's own number when it carries data). Returns the stream's exception verdict; `anomaly` says why.
   */
  segment(seq: number, data: Uint8Array, off: number, len: number, nowMs: number): SegmentResult {
    this.anomaly = -1;
    if (!this.sameAsRead(seq, data, off, len)) {
      // Refused whole, like every ambiguity: the reader's view does not change.
      this.anomaly = STREAM_ANOMALY.OVERLAP_DIFFERENT_DATA;
      return SEGMENT_RESULT.DROP;
    }
    // In pieces of at most the window, so an in-order segment larger than the window is read piece by piece (each
    // piece delivered, read and consumed before the next is within reach), while out-of-order bytes stay bounded.
    const w = this.windowBytes;
    let r: SegmentResult = SEGMENT_RESULT.ACCEPT;
    for (;;) {
      const n = len < w ? len : w;
      if (this.tcp.packet(0, 0, seq, 0, 0, -1, data, off, n, nowMs) === SEGMENT_RESULT.DROP) r = SEGMENT_RESULT.DROP;
      len -= n;
      if (len <= 0 || this.anomaly >= 0 || !this.taking) return r;
      seq = (seq + n) >>> 0;
      off += n;
    }
  }

  /**
   * Bytes of the segment that overlap bytes delivered and not yet consumed (buf[0, contig), stream offsets
   * [consumed, consumed + contig)) must be the same bytes: first bytes win, and a copy that differs is an anomaly.
   * Consumed bytes were read already (the reader's view cannot change), so later copies of them are not compared;
   * bytes not yet delivered are compared by the stream itself (its out-of-order copies).
   */
  private sameAsRead(seq: number, data: Uint8Array, off: number, len: number): boolean {
    const contig = this.contig;
    if (contig === 0 || len <= 0) return true;
    const s = this.tcp.dirs[0].offsetOf(seq) - this.consumed;
    const from = s < 0 ? 0 : s;
    const to = s + len < contig ? s + len : contig;
    const buf = this.buf;
    for (let i = from; i < to; i++) if (buf[i] !== data[off + i - s]) return false;
    return true;
  }

  /**
   * Fast path for bytes the reader does not need (an HTTP body being skipped): when nothing is buffered and the
   * segment is the next one in order, the stream moves past it without copying. False: use segment().
   */
  skipInOrder(seq: number, len: number): boolean {
    if (this.contig !== 0 || !this.tcp.dirs[0].skip(seq, len)) return false;
    this.consumed += len;
    return true;
  }

  /** Forgets the first n contiguous bytes (n ≤ contig): later copies of them are not compared. */
  consume(n: number): void {
    if (n <= 0) return;
    this.buf.copyWithin(0, n, this.contig);
    this.contig -= n;
    this.consumed += n;
  }

  /** Frees the stream's buffers (the slot is released). */
  close(): void {
    this.taking = false;
    this.tcp.close();
  }

  onData(data: Uint8Array, _offset: number): void {
    let p = 0;
    const len = data.length;
    while (p < len && this.taking) {
      const room = this.buf.length - this.contig;
      if (room === 0) {
        // The reader left the buffer full without deciding: nothing more can be read in order.
        this.taking = false;
        return;
      }
      const n = room < len - p ? room : len - p;
      this.buf.set(p === 0 && n === len ? data : data.subarray(p, p + n), this.contig);
      this.contig += n;
      p += n;
      if (!this.reader.onClientBytes(this)) this.taking = false;
    }
  }

  onGap(): void {
    // Bytes that will never be read: the reader cannot go on past them.
    this.taking = false;
    if (this.anomaly < 0) this.anomaly = STREAM_ANOMALY.HOLE;
  }

  onEnd(_offset: number, _reason: StreamEndReason): void {
    this.taking = false;
  }

  onAnomaly(code: StreamAnomaly): void {
    // Bytes a server could read differently outrank bounds: they decide the flow, a bound only this packet.
    if (this.anomaly < 0 || isAmbiguity(code)) this.anomaly = code;
  }
}

/** Anomalies where the server could read other bytes than the reader: names.on_anomaly. */
export function isAmbiguity(code: number): boolean {
  return code === STREAM_ANOMALY.BEFORE_START || code === STREAM_ANOMALY.OVERLAP_DIFFERENT_DATA || code === STREAM_ANOMALY.HOLE;
}
