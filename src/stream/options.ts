/**
 * Bounds and exception policies of TCP stream reassembly (docs/architecture.md, "Stream reassembly and HTTP
 * objects"). Every buffer a stream may hold is bounded here; what happens when a bound is hit is an explicit
 * exception action (after Suricata's exception policies), never an unbounded queue.
 *
 * These are the defaults and the options object; wiring them to src/config/settings.ts (flags, environment,
 * docs/configuration.md) comes with the engine integration.
 */

/** Bytes delivered per direction after which the direction is no longer inspected (16 MiB). */
export const STREAM_DEPTH_BYTES = 16 * 1024 * 1024;
/** Out-of-order bytes buffered per direction, each stored segment counted with STREAM_CHUNK_OVERHEAD_BYTES (1 MiB). */
export const STREAM_OOO_MAX_BYTES = 1024 * 1024;
/**
 * Delivered bytes kept per direction until the receiver acknowledges them (256 KiB), so that a retransmission of
 * delivered-but-unacknowledged bytes can be compared with what was inspected. 0 disables the comparison (and the copy).
 */
export const STREAM_RETAIN_MAX_BYTES = 256 * 1024;
/** A hole is given up once this many bytes wait behind it (512 KiB) ... */
export const STREAM_HOLE_WAIT_BYTES = 512 * 1024;
/** ... or once it is this old (10 s: several retransmission timeouts, RFC 6298 §2.4 recommends ≥ 1 s). */
export const STREAM_HOLE_WAIT_MS = 10_000;
/**
 * Farthest a segment may start ahead of the delivered offset when the receive window is unknown (midstream, or no
 * ACK seen yet) (16 MiB); RFC 7323 §2.3 bounds a real window by 2^30 bytes.
 */
export const STREAM_MAX_AHEAD_BYTES = 16 * 1024 * 1024;
/** Per-worker memcap across the out-of-order and retained bytes of all streams (256 MiB). */
export const STREAM_MEMCAP_BYTES = 256 * 1024 * 1024;
/** First retain page of a direction (2 KiB); each next page doubles ... */
export const STREAM_RETAIN_PAGE_MIN_BYTES = 2 * 1024;
/** ... up to 16 KiB. Retained bytes are charged to the memcap as whole pages. */
export const STREAM_RETAIN_PAGE_MAX_BYTES = 16 * 1024;
/** Accounting cost of one stored segment besides its bytes (object, array slot): bounds 1-byte-segment floods. */
export const STREAM_CHUNK_OVERHEAD_BYTES = 64;
/**
 * Bytes a segment may extend past the advertised right edge before it is an anomaly (1): a zero-window probe
 * carries one byte past the edge (RFC 9293 §3.8.6.1).
 */
export const STREAM_WINDOW_SLACK_BYTES = 1;

/** Packet-level outcome of an exception: let the packet go on (its bytes are not inspected), or drop it. */
export type StreamExceptionAction = 'pass' | 'drop';
/** What a hole that outlived its wait does: skip it (a gap event, inspection goes on after it) or stop the direction. */
export type StreamHoleAction = 'skip' | 'stop';

export interface StreamOptions {
  readonly depthBytes: number;
  readonly oooMaxBytes: number;
  readonly retainMaxBytes: number;
  readonly holeWaitBytes: number;
  readonly holeWaitMs: number;
  readonly maxAheadBytes: number;
  /** Overlapping bytes that differ from the bytes already seen (first bytes win either way). */
  readonly onOverlapDifferent: StreamExceptionAction;
  /** A segment that does not fit the out-of-order buffer (not buffered). */
  readonly onOooFull: StreamExceptionAction;
  /** A segment refused by the per-worker memcap (not buffered). */
  readonly onMemcap: StreamExceptionAction;
  /** Bytes beyond the receive window or too far ahead (not buffered). */
  readonly onOutOfWindow: StreamExceptionAction;
  readonly onHole: StreamHoleAction;
}

/**
 * Defaults. Differing overlaps drop the packet: receivers resolve overlaps differently, so the only way to be
 * sure the receiver sees the inspected bytes is to not forward the other ones. A full buffer drops the segment:
 * the sender retransmits it, TCP's own recovery, instead of bytes passing uninspected. Out-of-window bytes drop:
 * the receiver would discard them (RFC 9293 §3.10.7.4). Holes are skipped with a gap event.
 */
export const DEFAULT_STREAM_OPTIONS: StreamOptions = Object.freeze({
  depthBytes: STREAM_DEPTH_BYTES,
  oooMaxBytes: STREAM_OOO_MAX_BYTES,
  retainMaxBytes: STREAM_RETAIN_MAX_BYTES,
  holeWaitBytes: STREAM_HOLE_WAIT_BYTES,
  holeWaitMs: STREAM_HOLE_WAIT_MS,
  maxAheadBytes: STREAM_MAX_AHEAD_BYTES,
  onOverlapDifferent: 'drop',
  onOooFull: 'drop',
  onMemcap: 'drop',
  onOutOfWindow: 'drop',
  onHole: 'skip',
});

/** A programming or configuration error in stream options (a fault, not a wire anomaly). */
export class StreamOptionsError extends Error {
  readonly code = 'GWI_ERR_STREAM_OPTIONS';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StreamOptionsError';
  }
}

const MAX_BOUND = Number.MAX_SAFE_INTEGER;

/** Defaults overlaid with `partial`, range-checked and frozen. */
export function streamOptions(partial: Partial<StreamOptions> = {}): StreamOptions {
  const o: StreamOptions = Object.freeze({ ...DEFAULT_STREAM_OPTIONS, ...partial });
  for (const k of ['depthBytes', 'oooMaxBytes', 'retainMaxBytes', 'holeWaitBytes', 'holeWaitMs', 'maxAheadBytes'] as const) {
    const v = o[k];
    if (!Number.isInteger(v) || v < 0 || v > MAX_BOUND) throw new StreamOptionsError(`stream option ${k} must be an integer in [0, 2^53): ${v}`);
  }
  if (o.depthBytes === 0) throw new StreamOptionsError('stream option depthBytes must be at least 1');
  for (const k of ['onOverlapDifferent', 'onOooFull', 'onMemcap', 'onOutOfWindow'] as const) {
    if (o[k] !== 'pass' && o[k] !== 'drop') throw new StreamOptionsError(`stream option ${k} must be 'pass' or 'drop': ${String(o[k])}`);
  }
  if (o.onHole !== 'skip' && o.onHole !== 'stop') throw new StreamOptionsError(`stream option onHole must be 'skip' or 'stop': ${String(o.onHole)}`);
  return o;
}
