/**
 * The streaming DLP scanner (docs/dlp.md §Scanning): finds detector matches in one object's bytes delivered in
 * chunks of any size, with matches that straddle chunk boundaries found exactly once and at their object offset.
 *
 *   per object direction:   tail (≤ keep bytes of the previous window)  +  next slice (≤ DLP_SCAN_SLICE_BYTES)
 *                           └──────────── window, in a per-stage scratch buffer ────────────┘
 *   1. one RE2.Set of the detectors' prefilters (short, narrow patterns every match contains) over the window
 *      from the earliest resume point says which detectors may have a candidate (cost nearly independent of the
 *      number of detectors on clean traffic; broad patterns are kept out of the set because RE2's DFA for a set
 *      of counted repetitions over overlapping classes grows past its memory budget and falls back to the NFA);
 *   2. only those detectors' own RE2 run, each from its resume point, plus the detectors without a prefilter; each candidate is checked for its boundary
 *      characters, its length, its validator, its exclusions, then its keywords within `window` bytes;
 *   3. a candidate that touches the end of the window (it may still grow, or its boundary is not known yet) or
 *      whose likelihood a keyword in the next `window` bytes could still raise to the threshold is *pending*: it
 *      is decided when more bytes come or the object ends. `pending` tells the stage to hold the bytes.
 *
 *   keep = longest max_span + widest window + 1 (the byte before a match, for its boundary): every candidate that
 *   could still change starts inside the tail, so nothing is rescanned more than max_span bytes back: linear time.
 *
 * Memory per object direction: the tail (≤ keep ≤ DLP_MAX_SPAN_BYTES + DLP_MAX_WINDOW_BYTES + 1 bytes), a few
 * numbers per detector and at most DLP_MAX_PENDING_MATCHES pending matches. The clear value of a match lives only
 * inside one call: the scanner hands out its keyed hash and masked form.
 */
import RE2 from 're2';
import type { CompiledDetector } from './detector.js';
import { mask, normalize, validate } from './validators.js';

/** Bytes scanned per step: a longer chunk is scanned in slices of this size. Sizes the per-stage scratch buffer. */
export const DLP_SCAN_SLICE_BYTES = 16 * 1024;
/** Matches waiting for a keyword per object direction; past it the oldest is decided at its likelihood so far. */
export const DLP_MAX_PENDING_MATCHES = 32;

/** A match, already validated; `level` indexes LIKELIHOODS. No field holds the clear value. */
export interface DlpMatch {
  readonly detector: number;
  readonly offset: number;
  readonly length: number;
  readonly level: number;
  readonly keyedHash: string;
  readonly masked: string;
}
export type MatchSink = (m: DlpMatch) => void;
/** Keyed hash of a normalised value: `hmac-sha256:<hex>`. */
export type Hasher = (value: string) => string;

/** What every scanner of one stage shares: the detectors, their thresholds, the Set and the scratch buffer. */
export class ScanPlan {
  readonly detectors: readonly CompiledDetector[];
  /** Per detector: the likelihood level a match must reach to count. */
  readonly threshold: Int8Array;
  /** One RE2 set over the detectors' prefilters; `setIndex[i]` is the detector of its pattern i. */
  readonly set: InstanceType<typeof RE2.Set> | null;
  readonly setIndex: readonly number[];
  /** Detectors without a prefilter: each scans the window on its own. */
  readonly solo: readonly number[];
  /**
   * Per detector: 1 when it counts only with a keyword (its likelihood alone is under the threshold, with a keyword
   * it reaches it). Such a detector runs over a window only where a keyword could still matter (see scan).
   */
  readonly keywordGated: Uint8Array;
  readonly keep: number;
  readonly maxSpan: number;
  readonly scratch: Buffer;
  readonly hasher: Hasher;

  constructor(detectors: readonly CompiledDetector[], threshold: readonly number[], hasher: Hasher) {
    this.detectors = detectors;
    this.threshold = Int8Array.from(threshold);
    const withPrefilter = detectors.flatMap((d, i) => (d.prefilter !== null ? [i] : []));
    this.setIndex = withPrefilter;
    this.set = withPrefilter.length > 0 ? new RE2.Set(withPrefilter.map((i) => detectors[i]!.prefilter!)) : null;
    this.solo = detectors.flatMap((d, i) => (d.prefilter === null ? [i] : []));
    this.keywordGated = Uint8Array.from(detectors, (d, i) => (d.keywordRegex !== null && d.baseLevel < this.threshold[i]! && d.keywordLevel >= this.threshold[i]! ? 1 : 0));
    this.maxSpan = Math.max(1, ...detectors.map((d) => d.maxSpan));
    this.keep = this.maxSpan + Math.max(0, ...detectors.map((d) => d.window)) + 1;
    this.scratch = Buffer.allocUnsafe(this.keep + DLP_SCAN_SLICE_BYTES);
    this.hasher = hasher;
  }
}

const BOUNDARY_NONE = 0;
const BOUNDARY_DIGIT = 1;
const BOUNDARY_ALNUM = 2;
const BOUNDARY_BASE64 = 3;
const boundaryCode = (b: CompiledDetector['boundary']): number =>
  b === 'digit' ? BOUNDARY_DIGIT : b === 'alnum' ? BOUNDARY_ALNUM : b === 'base64' ? BOUNDARY_BASE64 : BOUNDARY_NONE;

/** Whether byte `c` may not touch a match with this boundary. */
function continues(kind: number, c: number): boolean {
  if (kind === BOUNDARY_NONE) return false;
  const digit = c >= 0x30 && c <= 0x39;
  if (kind === BOUNDARY_DIGIT) return digit;
  const alnum = digit || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
  if (kind === BOUNDARY_ALNUM) return alnum;
  return alnum || c === 0x2b || c === 0x2f || c === 0x2d;
}

interface Pending {
  detector: number;
  start: number;
  end: number;
  keyedHash: string;
  masked: string;
}

/** Scans one object of one flow direction. */
export class ObjectScanner {
  private readonly plan: ScanPlan;
  private readonly sink: MatchSink;
  private readonly boundary: Uint8Array;
  /** Object offset up to which each detector has decided its candidates (the next search starts here or later). */
  private readonly done: Float64Array;
  /** Object offset of a candidate of each detector that touched the window end, or -1. */
  private readonly waiting: Float64Array;
  /** 1 when the waiting candidate of a detector is already a valid value (its bytes are held). */
  private readonly waitingHolds: Uint8Array;
  /** Scratch: each detector's resume point in the current window. */
  private readonly resume: Float64Array;
  private tail: Buffer | null = null;
  private tailLen = 0;
  /** Object offset of tail[0]. */
  private tailBase = 0;
  private readonly after: Pending[] = [];
  private ended = false;
  /** Object offset up to which bytes have been scanned (the end of the previous window). */
  private scannedTo = 0;
  /** Object bytes pushed so far. */
  offset = 0;

  constructor(plan: ScanPlan, sink: MatchSink) {
    this.plan = plan;
    this.sink = sink;
    const n = plan.detectors.length;
    this.boundary = Uint8Array.from(plan.detectors.map((d) => boundaryCode(d.boundary)));
    this.done = new Float64Array(n);
    this.waiting = new Float64Array(n).fill(-1);
    this.waitingHolds = new Uint8Array(n);
    this.resume = new Float64Array(n);
  }

  /** Ready for the next object (the tail buffer is kept for reuse). */
  reset(): void {
    this.done.fill(0);
    this.waiting.fill(-1);
    this.waitingHolds.fill(0);
    this.after.length = 0;
    this.tailLen = 0;
    this.tailBase = 0;
    this.offset = 0;
    this.scannedTo = 0;
    this.ended = false;
  }

  /** A candidate is waiting for more bytes (its end, or a keyword): the stage holds what completes it. */
  get pending(): boolean {
    if (this.after.length > 0) return true;
    for (let i = 0; i < this.waiting.length; i++) if (this.waiting[i]! >= 0 && this.waitingHolds[i] === 1) return true;
    return false;
  }

  /** Bytes of the object, in order. */
  push(data: Uint8Array): void {
    if (this.ended) return;
    for (let at = 0; at < data.length; at += DLP_SCAN_SLICE_BYTES) {
      const slice = data.subarray(at, Math.min(data.length, at + DLP_SCAN_SLICE_BYTES));
      const scratch = this.plan.scratch;
      if (this.tail !== null) scratch.set(this.tail.subarray(0, this.tailLen), 0);
      scratch.set(slice, this.tailLen);
      const len = this.tailLen + slice.length;
      this.offset += slice.length;
      this.scan(scratch, len, this.tailBase, false);
      this.keepTail(scratch, len);
    }
  }

  /** The object ended: the end of the bytes is a real end, so every waiting candidate is decided now. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.scan(this.tail ?? this.plan.scratch, this.tailLen, this.tailBase, true);
    this.tailLen = 0;
  }

  private keepTail(buf: Buffer, len: number): void {
    const keep = Math.min(len, this.plan.keep);
    if (this.tail === null) this.tail = Buffer.allocUnsafe(this.plan.keep);
    buf.copy(this.tail, 0, len - keep, len);
    this.tailBase += len - keep;
    this.tailLen = keep;
  }

  /** Scans buf[0, len), whose byte 0 is object offset `base`; `final`: no byte follows. */
  private scan(buf: Buffer, len: number, base: number, final: boolean): void {
    const plan = this.plan;
    const view = buf.subarray(0, len);
    const end = base + len;
    this.resolveAfter(view, base, end, final);
    if (plan.detectors.length === 0 || len === 0) return;
    // A match of detector d that starts more than its max_span before the end of the previous window was decided
    // in it (or is waiting, from its own offset).
    const prev = this.scannedTo;
    this.scannedTo = end;
    let from = end;
    const resume = this.resume;
    for (let d = 0; d < plan.detectors.length; d++) {
      const det = plan.detectors[d]!;
      resume[d] = this.resumeOf(d, Math.max(base, prev - det.maxSpan));
      if (plan.keywordGated[d] === 1 && !this.keywordIn(det, view)) {
        // No keyword in the window (which reaches `window` bytes before any candidate still open: keep): a match
        // here can count only through a keyword in later bytes, so only a candidate within max_span + window of
        // the end matters; earlier ones would be decided under the threshold. A common shape (a 40-character
        // base64 run for AWS secret keys) then costs a scan of the window's end instead of every run in it.
        resume[d] = Math.max(resume[d]!, end - det.maxSpan - det.window);
      }
      from = Math.min(from, resume[d]!);
      this.waiting[d] = -1;
      this.waitingHolds[d] = 0;
    }
    if (from >= end) return;
    if (plan.set !== null) {
      for (const i of plan.set.match(view.subarray(from - base))) {
        const d = plan.setIndex[i]!;
        this.scanDetector(d, view, len, base, resume[d]!, final);
      }
    }
    for (const d of plan.solo) this.scanDetector(d, view, len, base, resume[d]!, final);
  }

  private resumeOf(d: number, floor: number): number {
    const w = this.waiting[d]!;
    return w >= 0 ? Math.max(w, this.done[d]!) : Math.max(floor, this.done[d]!);
  }

  private scanDetector(d: number, buf: Buffer, len: number, base: number, from: number, final: boolean): void {
    const det = this.plan.detectors[d]!;
    const kind = this.boundary[d]!;
    const re = det.regex;
    re.lastIndex = from - base;
    for (;;) {
      const m = re.exec(buf);
      if (m === null) break;
      const s = m.index;
      const e = re.lastIndex;
      if (e === s) {
        re.lastIndex = s + 1; // an empty match (a custom pattern that allows one): step over it
        if (s >= len) break;
        continue;
      }
      if ((s > 0 && continues(kind, buf[s - 1]!)) || e - s > det.maxSpan) {
        // Inside a longer run, or too long: nothing that starts within it is a match either.
        this.done[d] = base + e;
        continue;
      }
      const text = buf.toString('latin1', s, e);
      const valid = validate(det.validator, text);
      if (e >= len && !final) {
        // It may grow, and its boundary is the next byte: decide when more bytes come. Hold the bytes only when
        // what is here is already a valid value (else the byte that completes one comes later and is caught then).
        this.waiting[d] = base + s;
        this.waitingHolds[d] = valid && !det.exclude.has(normalize(det.validator, text)) ? 1 : 0;
        break;
      }
      if (e < len && continues(kind, buf[e]!)) {
        this.done[d] = base + s + 1;
        re.lastIndex = s + 1;
        continue;
      }
      if (!valid) {
        if (!final && s + det.maxSpan > len) {
          // Later bytes may still extend it into a valid value (an IBAN's next group): look again then.
          this.waiting[d] = base + s;
          this.waitingHolds[d] = 0;
          break;
        }
        this.done[d] = base + s + 1;
        re.lastIndex = s + 1;
        continue;
      }
      this.done[d] = base + e;
      const value = normalize(det.validator, text);
      if (det.exclude.has(value)) continue;
      this.candidate(d, det, buf, len, base, s, e, value, final);
    }
  }

  /** A validated candidate at buf[s, e): its likelihood from the keywords around it, now or once the window is seen. */
  private candidate(d: number, det: CompiledDetector, buf: Buffer, len: number, base: number, s: number, e: number, value: string, final: boolean): void {
    const threshold = this.plan.threshold[d]!;
    const keyedHash = this.plan.hasher(value);
    const masked = mask(det.mask, value);
    const out = { detector: d, offset: base + s, length: e - s, keyedHash, masked };
    if (det.baseLevel >= threshold || det.keywordLevel < threshold || det.keywordRegex === null) {
      // Keywords cannot change whether it counts; still report the level they give when they are at hand.
      const level = det.keywordRegex !== null && this.keywordNear(det, buf, Math.max(0, s - det.window), s, e, Math.min(len, e + det.window)) ? det.keywordLevel : det.baseLevel;
      this.sink({ ...out, level });
      return;
    }
    if (this.keywordNear(det, buf, Math.max(0, s - det.window), s, e, Math.min(len, e + det.window))) {
      this.sink({ ...out, level: det.keywordLevel });
      return;
    }
    if (final || e + det.window <= len) {
      this.sink({ ...out, level: det.baseLevel });
      return;
    }
    if (this.after.length >= DLP_MAX_PENDING_MATCHES) {
      const oldest = this.after.shift()!;
      this.emitPending(oldest, this.plan.detectors[oldest.detector]!.baseLevel);
    }
    this.after.push({ detector: d, start: base + s, end: base + e, keyedHash, masked });
  }

  /** A keyword of `det` anywhere in buf. */
  private keywordIn(det: CompiledDetector, buf: Buffer): boolean {
    const kw = det.keywordRegex!;
    kw.lastIndex = 0;
    return kw.test(buf);
  }

  /** A keyword of `det` in buf[a, s) or buf[e, b) (never inside the match itself). */
  private keywordNear(det: CompiledDetector, buf: Buffer, a: number, s: number, e: number, b: number): boolean {
    const kw = det.keywordRegex;
    if (kw === null) return false;
    if (s > a) {
      kw.lastIndex = 0;
      if (kw.test(buf.subarray(a, s))) return true;
    }
    if (b > e) {
      kw.lastIndex = 0;
      if (kw.test(buf.subarray(e, b))) return true;
    }
    return false;
  }

  /** Matches waiting for a keyword after them: decided when one is seen, or when their window is complete. */
  private resolveAfter(buf: Buffer, base: number, end: number, final: boolean): void {
    if (this.after.length === 0) return;
    let kept = 0;
    for (let i = 0; i < this.after.length; i++) {
      const p = this.after[i]!;
      const det = this.plan.detectors[p.detector]!;
      const e = p.end - base;
      const b = Math.min(end, p.end + det.window) - base;
      if (this.keywordNear(det, buf, e, e, e, b)) this.emitPending(p, det.keywordLevel);
      else if (final || p.end + det.window <= end) this.emitPending(p, det.baseLevel);
      else this.after[kept++] = p;
    }
    this.after.length = kept;
  }

  private emitPending(p: Pending, level: number): void {
    this.sink({ detector: p.detector, offset: p.start, length: p.end - p.start, level, keyedHash: p.keyedHash, masked: p.masked });
  }
}
