/**
 * What a reassembled TCP direction tells its consumer (after Zeek's DeliverStream + end-of-data events and
 * gopacket's ReassembledSG callbacks): in-order bytes with their stream offset, gaps, the end, and anomalies.
 * Anomalies are named, counted codes, never exceptions (house style; Suricata's stream events).
 */

export const STREAM_ANOMALY = {
  /** The direction was picked up without its SYN: degraded mode (no ISN, no window scale). */
  MIDSTREAM: 0,
  /** A retransmission or overlap carried bytes that differ from the bytes already seen (first bytes win). */
  OVERLAP_DIFFERENT_DATA: 1,
  /** A hole outlived its wait (bytes or ms) and was skipped or stopped the direction (options.onHole). */
  HOLE: 2,
  /** Bytes beyond the receiver's advertised window (RFC 9293 §3.10.7.4): not buffered. */
  BEYOND_WINDOW: 3,
  /** Bytes farther ahead than maxAheadBytes while the window is unknown: not buffered. */
  TOO_FAR_AHEAD: 4,
  /** The out-of-order buffer of the direction is full: the segment is not buffered. */
  OOO_BUFFER_FULL: 5,
  /** The per-worker memcap refused the segment: not buffered. */
  MEMCAP: 6,
  /** Bytes after the FIN's sequence number, or a second FIN at another sequence number: ignored. */
  DATA_AFTER_FIN: 7,
  /** A SYN with another ISN after bytes were delivered: ignored. */
  SYN_CHANGED: 8,
  /** A window-scale shift over 14 (RFC 7323 §2.3: "use 14 instead"). */
  WSCALE_TOO_LARGE: 9,
  /** An RST outside [delivered, window]: the receiver would not act on it, so neither do we (RFC 5961 §3.2). */
  RST_OUT_OF_WINDOW: 10,
  /**
   * A segment starting before ISN+1 (not midstream): never part of the stream (RFC 9293 §3.10.7.4 has the receiver
   * trim such bytes), but a receiver that anchored elsewhere could read it differently, so the whole segment is
   * refused (SEGMENT_RESULT.DROP; none of its bytes are taken).
   */
  BEFORE_START: 11,
} as const;
export type StreamAnomaly = (typeof STREAM_ANOMALY)[keyof typeof STREAM_ANOMALY];
export const STREAM_ANOMALY_NAMES: readonly string[] = Object.keys(STREAM_ANOMALY).map((k) => k.toLowerCase());

export const STREAM_END = {
  /** Every byte before the FIN was delivered. */
  FIN: 0,
  /** An acceptable RST: bytes not yet delivered are discarded, as the receiver discards them. */
  RST: 1,
  /** depthBytes were delivered: the direction is no longer inspected. */
  DEPTH: 2,
  /** A hole outlived its wait with onHole 'stop'. */
  GAP: 3,
  /** The owner closed the stream (flow expired or evicted). */
  CLOSED: 4,
} as const;
export type StreamEndReason = (typeof STREAM_END)[keyof typeof STREAM_END];
export const STREAM_END_NAMES: readonly string[] = Object.keys(STREAM_END).map((k) => k.toLowerCase());

/** Per-segment answer to the caller: the exception policy's verdict on this packet. */
export const SEGMENT_RESULT = {
  ACCEPT: 0,
  DROP: 1,
} as const;
export type SegmentResult = (typeof SEGMENT_RESULT)[keyof typeof SEGMENT_RESULT];

/**
 * Receives one direction's bytes in stream order. Offsets count bytes from ISN+1 (offset 0 is the first byte after
 * the SYN), or from the first byte seen in midstream mode.
 */
export interface StreamConsumer {
  /**
   * In-order bytes at stream offset `offset`. `data` may be a view of the caller's packet buffer: it is valid only
   * during the call (copy what must outlive it).
   */
  onData(data: Uint8Array, offset: number): void;
  /** `length` bytes at `offset` will never be delivered (a skipped hole). */
  onGap(offset: number, length: number): void;
  /** The direction ended at `offset` (its delivered offset); nothing follows. */
  onEnd(offset: number, reason: StreamEndReason): void;
  onAnomaly(code: StreamAnomaly, offset: number): void;
}

/** Per-worker counters shared by all streams of the worker: fixed slots, then one per anomaly code. */
export const STREAM_COUNTER = {
  SEGMENTS: 0,
  BYTES_DELIVERED: 1,
  /** Bytes copied into out-of-order buffers. */
  BYTES_BUFFERED: 2,
  /** Retransmitted bytes identical to the bytes seen first (or already acknowledged). */
  BYTES_RETRANSMITTED: 3,
  /** Retransmitted bytes that could not be compared (not retained: retainMaxBytes, memcap, or midstream before the start). */
  BYTES_UNVERIFIED: 4,
  GAPS: 5,
  GAP_BYTES: 6,
  ENDS_FIN: 7,
  ENDS_RST: 8,
  DEPTH_REACHED: 9,
  /** Delivered bytes not retained because the memcap was full (retransmissions of them go unverified). */
  RETAIN_SKIPPED_BYTES: 10,
  /** Segments the exception policy asked the caller to drop. */
  SEGMENTS_DROP: 11,
} as const;
const FIXED_COUNTERS = Object.keys(STREAM_COUNTER).length;
export const STREAM_COUNTER_NAMES: readonly string[] = [
  ...Object.keys(STREAM_COUNTER).map((k) => k.toLowerCase()),
  ...STREAM_ANOMALY_NAMES.map((n) => `anomaly_${n}`),
];

export function createStreamCounters(): Float64Array {
  return new Float64Array(STREAM_COUNTER_NAMES.length);
}

/** Index of an anomaly's counter in a createStreamCounters() array. */
export function anomalyCounter(code: StreamAnomaly): number {
  return FIXED_COUNTERS + code;
}
