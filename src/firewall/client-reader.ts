/**
 * The client's bytes of one TCP connection in sequence order, from ISN+1 of the SYN the appliance saw, for reading
 * server names (TLS SNI, HTTP Host). A minimal in-order reader: one window of `windowBytes` from `start` (the
 * sequence number of window offset 0), a byte per position saying whether it is known, and how many bytes from
 * offset 0 are contiguous. Sequence arithmetic is modulo 2^32 (RFC 9293 §3.4).
 *
 *        isn1            start                        start + contig        start + windowBytes
 *   ──────┼────────────────┼───────────────────────────────┼───── … gaps, later bytes … ─┤
 *         │ consumed (read │ contiguous: the name reader   │ out of order, kept to compare │ beyond: refused
 *         │ and forgotten) │ parses buf[0, contig)         │ with later copies             │
 *
 * What a server would accept differently from what the reader sees is refused instead of guessed at:
 *   - bytes before ISN+1: never part of the stream (RFC 9293 §3.10.7.4 trims them at the server), so a segment
 *     that starts before ISN+1 is an anomaly (BEFORE_START);
 *   - an overlap whose bytes differ from bytes already kept: the server and the reader may keep different copies
 *     (OVERLAP_DIFFERS). Overlaps with identical bytes (retransmissions) are fine;
 *   - a segment ending past the window (BEYOND_WINDOW): not kept, so the caller must not let it through (the
 *     client sends it again once the window has moved).
 * Bytes before `start` (already consumed) are retransmissions of bytes read earlier: they are trimmed, not compared.
 * Allocation-free after creation; a rejected segment changes nothing.
 */

export const READ_RESULT = {
  OK: 0,
  BEFORE_START: 1,
  OVERLAP_DIFFERS: 2,
  BEYOND_WINDOW: 3,
} as const;
export type ReadResult = (typeof READ_RESULT)[keyof typeof READ_RESULT];

/** Beyond this many consumed bytes the ISN+1 check is skipped (signed 32-bit sequence distance stays meaningful). */
const ISN_CHECK_MAX_BYTES = 1 << 30;

export interface ClientReader {
  /** Sequence number of the stream's first byte (ISN+1 of the client's SYN). */
  isn1: number;
  /** Sequence number of window offset 0. */
  start: number;
  /** Bytes consumed since isn1. */
  consumed: number;
  readonly buf: Uint8Array;
  /** 1 where buf holds a byte. */
  readonly have: Uint8Array;
  /** Bytes known contiguously from offset 0. */
  contig: number;
  /** End of the highest byte kept (offset). */
  hi: number;
}

export function createReader(windowBytes: number): ClientReader {
  return { isn1: 0, start: 0, consumed: 0, buf: new Uint8Array(windowBytes), have: new Uint8Array(windowBytes), contig: 0, hi: 0 };
}

/** Starts reading a stream whose first byte has sequence number isn1. */
export function resetReader(r: ClientReader, isn1: number): void {
  r.isn1 = isn1 >>> 0;
  r.start = isn1 >>> 0;
  r.consumed = 0;
  r.have.fill(0, 0, r.hi);
  r.contig = 0;
  r.hi = 0;
}

/** Adds data[off, off+len) at sequence number seq. */
export function addSegment(r: ClientReader, data: Uint8Array, off: number, len: number, seq: number): ReadResult {
  if (len <= 0) return READ_RESULT.OK;
  if (r.consumed < ISN_CHECK_MAX_BYTES && ((seq - r.isn1) | 0) < 0) return READ_RESULT.BEFORE_START;
  const s = (seq - r.start) | 0;
  const e = s + len;
  if (e <= 0) return READ_RESULT.OK; // a retransmission of bytes already read
  const w = r.buf.length;
  if (e > w) return READ_RESULT.BEYOND_WINDOW;
  const from = s < 0 ? 0 : s;
  const skip = from - s;
  const buf = r.buf;
  const have = r.have;
  const overlapEnd = e < r.hi ? e : r.hi;
  for (let i = from; i < overlapEnd; i++) {
    if (have[i] === 1 && buf[i] !== data[off + skip + i - from]) return READ_RESULT.OVERLAP_DIFFERS;
  }
  for (let i = from; i < e; i++) {
    buf[i] = data[off + skip + i - from] as number;
    have[i] = 1;
  }
  if (e > r.hi) r.hi = e;
  let c = r.contig;
  while (c < r.hi && have[c] === 1) c++;
  r.contig = c;
  return READ_RESULT.OK;
}

/** Forgets the first n contiguous bytes (n ≤ contig): the window moves on by n. */
export function consume(r: ClientReader, n: number): void {
  if (n <= 0) return;
  const hi = r.hi;
  r.buf.copyWithin(0, n, hi);
  r.have.copyWithin(0, n, hi);
  r.have.fill(0, hi - n, hi);
  r.hi = hi - n;
  r.contig -= n;
  r.start = (r.start + n) >>> 0;
  r.consumed += n;
}

/**
 * Fast path for bytes the caller does not need to see (an HTTP body being skipped): when the window is empty and
 * the segment is the next one in order, move past it without copying. False when the segment must go through
 * addSegment.
 */
export function skipInOrder(r: ClientReader, seq: number, len: number): boolean {
  if (r.hi !== 0 || seq >>> 0 !== r.start) return false;
  r.start = (r.start + len) >>> 0;
  r.consumed += len;
  return true;
}
