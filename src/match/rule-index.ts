/**
 * First-match rule lookup whose cost does not grow with the number of rules (the "bit vector" scheme of
 * Lakshman & Stiliadis, SIGCOMM '98, with aggregated summaries as in Baboescu & Varghese, SIGCOMM '01).
 *
 * Rules compile to "terms" (one per rule, two for `direction: either`), numbered in rule order. For each indexed
 * field (protocol, source address, destination address, source port, destination port) the value space is cut
 * into elementary intervals at every range boundary of every term; each interval knows the set of terms that
 * match a value inside it. A lookup is one binary search per field, then an AND of the fields' term sets; the
 * lowest set bit is the first matching term, so strict rule order comes for free.
 *
 * Term sets are stored three ways, chosen per interval at compile time:
 *   - wild: one bitset per field of the terms that do not constrain the field (they match every value);
 *   - sparse: when at most SPARSE_MAX constrained terms cover the interval, their sorted ids (the common case:
 *     10,000 distinct CIDR rules give intervals with one id each);
 *   - dense: a bitset, deduplicated across intervals (overlapping broad rules).
 * A lookup splits the candidates in two. Every term listed by a sparse field is checked directly against the other
 * fields (at most SPARSE_MAX per field). Any other matching term must be wild in all the sparse fields: those are
 * found by scanning the precomputed AND of the wild bitsets of that combination of fields (one per subset of the
 * five fields), ANDed with the dense fields, a summary word at a time (a summary word per 32 words of each bitset
 * skips 1,024 terms at once). In the common cases this bitset is empty or sparse, so a lookup costs
 * O(SPARSE_MAX × fields + terms / 32,768) word operations.
 *
 * Memory: O(intervals × SPARSE_MAX) plus one bitset (terms / 8 bytes) per distinct dense interval set; the
 * compiler reports it (CompiledPolicy.stats).
 */
import { cmp6, mergeBigRanges, mergeRanges, PORT_MAX, V4_MAX, V6_MAX, writeWords, type AddressRanges, type BigRange, type Range } from './ranges.js';

/** Intervals covered by at most this many constrained terms keep a sorted id list instead of a bitset. */
export const SPARSE_MAX = 16;
/** Up to this many 32-term words, a plain AND of every word beats the two-part lookup. */
const SMALL_WORDS = 8;

export const FIELD = { PROTO: 0, SRC: 1, DST: 2, SPORT: 3, DPORT: 4 } as const;
const FIELD_COUNT = 5;

/** One term's constraints; null = any value (the term is wild in that field). */
export interface TermSpec {
  /** 256 entries, 1 = protocol matches. */
  proto: Uint8Array | null;
  src: AddressRanges | null;
  dst: AddressRanges | null;
  sport: Range[] | null;
  dport: Range[] | null;
}

/** The 5-tuple a lookup reads (addresses as in packet/types.ts: 4 words, IPv4 mapped). */
export interface FlowView {
  proto: number;
  src: Uint32Array;
  dst: Uint32Array;
  sport: number;
  dport: number;
}

export function createFlowView(): FlowView {
  return { proto: 0, src: new Uint32Array(4), dst: new Uint32Array(4), sport: 0, dport: 0 };
}

/** Count trailing zeros of a non-zero 32-bit value. */
function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

class FieldIndex {
  /** Does any term constrain this field? If not, the field is skipped entirely. */
  readonly active: boolean;
  readonly wild: Uint32Array;
  readonly wildSum: Uint32Array;
  /** Per interval: dense bitset index, or -1 for sparse. */
  readonly denseOf: Int32Array;
  /** Per interval: [sparseOff[i], sparseOff[i + 1]) in sparseIds. */
  readonly sparseOff: Int32Array;
  readonly sparseIds: Int32Array;
  readonly dense: Uint32Array;
  readonly denseSum: Uint32Array;
  readonly denseCount: number;

  constructor(words: number, sumWords: number, wildTerms: number[], intervalCount: number, events: { start: number[][]; end: number[][] } | null, termCount: number) {
    this.wild = new Uint32Array(words);
    for (const t of wildTerms) this.wild[t >>> 5] = (this.wild[t >>> 5]! | (1 << (t & 31))) >>> 0;
    this.wildSum = summarize(this.wild, words, sumWords, 0);
    this.active = wildTerms.length < termCount;
    this.denseOf = new Int32Array(intervalCount).fill(-1);
    this.sparseOff = new Int32Array(intervalCount + 1);
    if (events === null) {
      this.sparseIds = new Int32Array(0);
      this.dense = new Uint32Array(0);
      this.denseSum = new Uint32Array(0);
      this.denseCount = 0;
      return;
    }
    // Sweep the intervals in order, keeping the set of terms whose range covers the current one.
    const activeSet = new Uint32Array(words);
    let activeCount = 0;
    const ids: number[] = [];
    const denseList: Uint32Array[] = [];
    const byHash = new Map<number, number[]>();
    for (let i = 0; i < intervalCount; i++) {
      for (const t of events.end[i] ?? []) {
        activeSet[t >>> 5] = (activeSet[t >>> 5]! & ~(1 << (t & 31))) >>> 0;
        activeCount--;
      }
      for (const t of events.start[i] ?? []) {
        activeSet[t >>> 5] = (activeSet[t >>> 5]! | (1 << (t & 31))) >>> 0;
        activeCount++;
      }
      this.sparseOff[i] = ids.length;
      if (activeCount <= SPARSE_MAX) {
        if (activeCount > 0) for (let w = 0; w < words; w++) {
          let v = activeSet[w]!;
          while (v !== 0) {
            ids.push((w << 5) | ctz(v));
            v &= v - 1;
          }
        }
        continue;
      }
      let h = 0x811c9dc5;
      for (let w = 0; w < words; w++) h = Math.imul(h ^ activeSet[w]!, 0x01000193);
      const candidates = byHash.get(h);
      let found = -1;
      if (candidates !== undefined) {
        for (const c of candidates) {
          const d = denseList[c] as Uint32Array;
          let same = true;
          for (let w = 0; w < words && same; w++) same = d[w] === activeSet[w];
          if (same) {
            found = c;
            break;
          }
        }
      }
      if (found < 0) {
        found = denseList.length;
        denseList.push(activeSet.slice());
        if (candidates === undefined) byHash.set(h, [found]);
        else candidates.push(found);
      }
      this.denseOf[i] = found;
    }
    this.sparseOff[intervalCount] = ids.length;
    this.sparseIds = Int32Array.from(ids);
    this.denseCount = denseList.length;
    this.dense = new Uint32Array(denseList.length * words);
    this.denseSum = new Uint32Array(denseList.length * sumWords);
    denseList.forEach((d, k) => {
      this.dense.set(d, k * words);
      this.denseSum.set(summarize(d, words, sumWords, 0), k * sumWords);
    });
  }

  get bytes(): number {
    return this.wild.byteLength + this.wildSum.byteLength + this.denseOf.byteLength + this.sparseOff.byteLength + this.sparseIds.byteLength + this.dense.byteLength + this.denseSum.byteLength;
  }
}

function summarize(bits: Uint32Array, words: number, sumWords: number, off: number): Uint32Array {
  const s = new Uint32Array(sumWords);
  for (let w = 0; w < words; w++) if (bits[off + w] !== 0) s[w >>> 5] = (s[w >>> 5]! | (1 << (w & 31))) >>> 0;
  return s;
}

/** Interval i covers [starts[i], starts[i + 1] - 1]; starts[0] = 0. */
function buildStarts(ranges: Range[][], max: number): { starts: number[]; index: (v: number) => number } {
  const set = new Set<number>([0]);
  for (const rs of ranges) for (const [lo, hi] of rs) {
    set.add(lo);
    if (hi < max) set.add(hi + 1);
  }
  const starts = [...set].sort((a, b) => a - b);
  const pos = new Map<number, number>();
  starts.forEach((s, i) => pos.set(s, i));
  return { starts, index: (v) => pos.get(v) as number };
}

function buildBigStarts(ranges: BigRange[][]): { starts: bigint[]; index: (v: bigint) => number } {
  const set = new Set<bigint>([0n]);
  for (const rs of ranges) for (const [lo, hi] of rs) {
    set.add(lo);
    if (hi < V6_MAX) set.add(hi + 1n);
  }
  const starts = [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const pos = new Map<bigint, number>();
  starts.forEach((s, i) => pos.set(s, i));
  return { starts, index: (v) => pos.get(v) as number };
}

/** Last i with a[i] <= v (a sorted ascending, a[0] = 0). */
function floorIndex(a: Uint32Array, v: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (a[mid]! <= v) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function floorIndex6(a: Uint32Array, v: ArrayLike<number>): number {
  let lo = 0;
  let hi = (a.length >> 2) - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cmp6(v, a, mid << 2) >= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface RuleIndexStats {
  terms: number;
  intervals: number;
  denseSets: number;
  bytes: number;
}

export class RuleIndex {
  readonly termCount: number;
  private readonly words: number;
  private readonly sumWords: number;
  private readonly fields: FieldIndex[];
  /** Protocol → interval (the protocol number itself). */
  private readonly srcStarts4: Uint32Array;
  private readonly srcStarts6: Uint32Array;
  private readonly dstStarts4: Uint32Array;
  private readonly dstStarts6: Uint32Array;
  private readonly sportStarts: Uint32Array;
  private readonly dportStarts: Uint32Array;

  // Per-lookup scratch (one lookup at a time per worker; no allocation).
  private readonly curDense = new Int32Array(FIELD_COUNT);
  private readonly curA = new Int32Array(FIELD_COUNT);
  private readonly curB = new Int32Array(FIELD_COUNT);
  private readonly curOn = new Uint8Array(FIELD_COUNT);
  private readonly activeFields: Int32Array;
  /** Per subset of fields (bit f = field f): AND of their wild bitsets, and its summary. */
  private readonly allWild: Uint32Array[];
  private readonly allWildSum: Uint32Array[];
  /** Fields of the current lookup whose set is sparse / dense (ignored fields are in neither). */
  private readonly curSparse = new Int32Array(FIELD_COUNT);
  private curSparseCount = 0;
  private readonly curDenseFields = new Int32Array(FIELD_COUNT);
  private curDenseCount = 0;
  private curMask = 0;


  constructor(terms: TermSpec[]) {
    const n = terms.length;
    this.termCount = n;
    this.words = Math.max(1, Math.ceil(n / 32));
    this.sumWords = Math.max(1, Math.ceil(this.words / 32));
    const W = this.words;
    const S = this.sumWords;

    // Protocol: 256 "intervals", one per protocol number.
    const protoWild: number[] = [];
    const protoEvents = { start: Array.from({ length: 256 }, () => [] as number[]), end: Array.from({ length: 257 }, () => [] as number[]) };
    terms.forEach((t, i) => {
      if (t.proto === null) protoWild.push(i);
      else for (let p = 0; p < 256; p++) if (t.proto[p] === 1) {
        (protoEvents.start[p] as number[]).push(i);
        (protoEvents.end[p + 1] as number[]).push(i);
      }
    });
    const protoField = new FieldIndex(W, S, protoWild, 256, protoEvents, n);

    const addr = (pick: (t: TermSpec) => AddressRanges | null): { field: FieldIndex; s4: Uint32Array; s6: Uint32Array } => {
      const wild: number[] = [];
      const v4: Range[][] = [];
      const v6: BigRange[][] = [];
      terms.forEach((t, i) => {
        const a = pick(t);
        if (a === null) {
          wild.push(i);
          v4.push([]);
          v6.push([]);
        } else {
          v4.push(mergeRanges(a.v4));
          v6.push(mergeBigRanges(a.v6));
        }
      });
      const b4 = buildStarts(v4, V4_MAX);
      const b6 = buildBigStarts(v6);
      const n4 = b4.starts.length;
      const total = n4 + b6.starts.length;
      const start = Array.from({ length: total + 1 }, () => [] as number[]);
      const end = Array.from({ length: total + 1 }, () => [] as number[]);
      v4.forEach((rs, i) => {
        for (const [lo, hi] of rs) {
          (start[b4.index(lo)] as number[]).push(i);
          (end[hi < V4_MAX ? b4.index(hi + 1) : n4] as number[]).push(i);
        }
      });
      v6.forEach((rs, i) => {
        for (const [lo, hi] of rs) {
          (start[n4 + b6.index(lo)] as number[]).push(i);
          (end[hi < V6_MAX ? n4 + b6.index(hi + 1n) : total] as number[]).push(i);
        }
      });
      // Ranges never span the v4/v6 boundary, so one sweep over [v4 intervals, v6 intervals] is exact.
      const field = new FieldIndex(W, S, wild, total, { start, end }, n);
      const s6 = new Uint32Array(b6.starts.length * 4);
      b6.starts.forEach((s, i) => writeWords(s, s6, i * 4));
      return { field, s4: Uint32Array.from(b4.starts), s6 };
    };
    const src = addr((t) => t.src);
    const dst = addr((t) => t.dst);

    const port = (pick: (t: TermSpec) => Range[] | null): { field: FieldIndex; starts: Uint32Array } => {
      const wild: number[] = [];
      const rs: Range[][] = [];
      terms.forEach((t, i) => {
        const r = pick(t);
        if (r === null) {
          wild.push(i);
          rs.push([]);
        } else {
          rs.push(mergeRanges(r));
        }
      });
      const b = buildStarts(rs, PORT_MAX);
      const count = b.starts.length;
      const start = Array.from({ length: count + 1 }, () => [] as number[]);
      const end = Array.from({ length: count + 1 }, () => [] as number[]);
      rs.forEach((ranges, i) => {
        for (const [lo, hi] of ranges) {
          (start[b.index(lo)] as number[]).push(i);
          (end[hi < PORT_MAX ? b.index(hi + 1) : count] as number[]).push(i);
        }
      });
      return { field: new FieldIndex(W, S, wild, count, { start, end }, n), starts: Uint32Array.from(b.starts) };
    };
    const sport = port((t) => t.sport);
    const dport = port((t) => t.dport);

    this.fields = [protoField, src.field, dst.field, sport.field, dport.field];
    this.srcStarts4 = src.s4;
    this.srcStarts6 = src.s6;
    this.dstStarts4 = dst.s4;
    this.dstStarts6 = dst.s6;
    this.sportStarts = sport.starts;
    this.dportStarts = dport.starts;
    this.activeFields = Int32Array.from(this.fields.map((f, i) => (f.active ? i : -1)).filter((i) => i >= 0));
    this.allWild = [];
    this.allWildSum = [];
    const all = new Uint32Array(W);
    for (let t = 0; t < n; t++) all[t >>> 5] = (all[t >>> 5]! | (1 << (t & 31))) >>> 0;
    for (let mask = 0; mask < 1 << FIELD_COUNT; mask++) {
      const w = all.slice();
      for (let f = 0; f < FIELD_COUNT; f++) {
        if ((mask & (1 << f)) === 0) continue;
        const wild = (this.fields[f] as FieldIndex).wild;
        for (let i = 0; i < W; i++) w[i] = (w[i]! & wild[i]!) >>> 0;
      }
      this.allWild.push(w);
      this.allWildSum.push(summarize(w, W, S, 0));
    }
  }

  get stats(): RuleIndexStats {
    let bytes = this.srcStarts4.byteLength + this.srcStarts6.byteLength + this.dstStarts4.byteLength + this.dstStarts6.byteLength + this.sportStarts.byteLength + this.dportStarts.byteLength;
    let intervals = 0;
    let denseSets = 0;
    for (const w of this.allWild) bytes += w.byteLength;
    for (const w of this.allWildSum) bytes += w.byteLength;
    for (const f of this.fields) {
      bytes += f.bytes;
      intervals += f.denseOf.length;
      denseSets += f.denseCount;
    }
    return { terms: this.termCount, intervals, denseSets, bytes };
  }

  private addrInterval(starts4: Uint32Array, starts6: Uint32Array, a: Uint32Array): number {
    if (a[0] === 0 && a[1] === 0 && a[2] === 0xffff) return floorIndex(starts4, a[3]!);
    return starts4.length + floorIndex6(starts6, a);
  }

  /**
   * Loads the per-field term sets for `v`. `ignorePorts` (non-first fragments, which carry no ports) treats the
   * port fields as matching.
   */
  prepare(v: FlowView, ignorePorts: boolean): void {
    const on = this.curOn;
    this.curSparseCount = 0;
    this.curDenseCount = 0;
    this.curMask = 0;
    for (let k = 0; k < this.activeFields.length; k++) {
      const f = this.activeFields[k]!;
      if (ignorePorts && (f === FIELD.SPORT || f === FIELD.DPORT)) {
        on[f] = 0;
        continue;
      }
      let interval: number;
      switch (f) {
        case FIELD.PROTO:
          interval = v.proto & 0xff;
          break;
        case FIELD.SRC:
          interval = this.addrInterval(this.srcStarts4, this.srcStarts6, v.src);
          break;
        case FIELD.DST:
          interval = this.addrInterval(this.dstStarts4, this.dstStarts6, v.dst);
          break;
        case FIELD.SPORT:
          interval = floorIndex(this.sportStarts, v.sport);
          break;
        default:
          interval = floorIndex(this.dportStarts, v.dport);
      }
      on[f] = 1;
      const field = this.fields[f] as FieldIndex;
      const d = field.denseOf[interval]!;
      this.curDense[f] = d;
      this.curA[f] = field.sparseOff[interval]!;
      this.curB[f] = field.sparseOff[interval + 1]!;
      if (d < 0) {
        this.curSparse[this.curSparseCount++] = f;
        this.curMask |= 1 << f;
      } else {
        this.curDenseFields[this.curDenseCount++] = f;
      }
    }
  }

  /** Is term t in field f's current set? (Sparse lists are sorted and at most SPARSE_MAX long.) */
  private inField(f: number, t: number): boolean {
    const field = this.fields[f] as FieldIndex;
    const bit = 1 << (t & 31);
    if ((field.wild[t >>> 5]! & bit) !== 0) return true;
    const d = this.curDense[f]!;
    if (d >= 0) return (field.dense[d * this.words + (t >>> 5)]! & bit) !== 0;
    const ids = field.sparseIds;
    for (let i = this.curA[f]!, end = this.curB[f]!; i < end; i++) {
      const id = ids[i]!;
      if (id >= t) return id === t;
    }
    return false;
  }

  private fieldWord(f: number, w: number): number {
    const field = this.fields[f] as FieldIndex;
    let v = field.wild[w]!;
    const d = this.curDense[f]!;
    if (d >= 0) return v | field.dense[d * this.words + w]!;
    const ids = field.sparseIds;
    for (let i = this.curA[f]!, end = this.curB[f]!; i < end; i++) {
      const id = ids[i]!;
      if (id >>> 5 === w) v |= 1 << (id & 31);
    }
    return v;
  }

  private fieldSum(f: number, s: number): number {
    const field = this.fields[f] as FieldIndex;
    let v = field.wildSum[s]!;
    const d = this.curDense[f]!;
    if (d >= 0) return v | field.denseSum[d * this.sumWords + s]!;
    const ids = field.sparseIds;
    for (let i = this.curA[f]!, end = this.curB[f]!; i < end; i++) {
      const id = ids[i]!;
      if (id >>> 10 === s) v |= 1 << ((id >>> 5) & 31);
    }
    return v;
  }

  /** Few terms: AND the fields' words directly. */
  private nextSmall(from: number): number {
    const act = this.activeFields;
    const on = this.curOn;
    for (let w = from >>> 5; w < this.words; w++) {
      let acc = -1;
      for (let k = 0; k < act.length && acc !== 0; k++) {
        const f = act[k]!;
        if (on[f] !== 0) acc &= this.fieldWord(f, w);
      }
      if (w === from >>> 5) acc &= (0xffffffff << (from & 31)) | 0;
      if (acc !== 0) {
        const t = (w << 5) | ctz(acc);
        return t < this.termCount ? t : -1;
      }
    }
    return -1;
  }

  /** Does term t match every field of the current lookup? */
  private matchesAll(t: number): boolean {
    const act = this.activeFields;
    for (let k = 0; k < act.length; k++) {
      const f = act[k]!;
      if (this.curOn[f] !== 0 && !this.inField(f, t)) return false;
    }
    return true;
  }

  /** The lowest term ≥ from whose indexed fields all match the prepared view; -1 when none. */
  next(from: number): number {
    const n = this.termCount;
    if (from >= n) return -1;
    if (this.words <= SMALL_WORDS) return this.nextSmall(from);
    // (A) Terms listed by a sparse field: check each against every field. Lists are sorted: the first hit per
    // list is that list's best.
    let best = n;
    for (let k = 0; k < this.curSparseCount; k++) {
      const f = this.curSparse[k]!;
      const ids = (this.fields[f] as FieldIndex).sparseIds;
      for (let i = this.curA[f]!, end = this.curB[f]!; i < end; i++) {
        const t = ids[i]!;
        if (t < from) continue;
        if (t >= best) break;
        if (this.matchesAll(t)) {
          best = t;
          break;
        }
      }
    }
    // (B) Terms wild in every sparse field, which must also be in every dense field: scan below `best`.
    if (best <= from) return best;
    const wild = this.allWild[this.curMask] as Uint32Array;
    const wildSum = this.allWildSum[this.curMask] as Uint32Array;
    const fromWord = from >>> 5;
    const fromSum = fromWord >>> 5;
    const lastWord = (best - 1) >>> 5;
    const lastSum = Math.min(lastWord >>> 5, this.sumWords - 1);
    const dense = this.curDenseFields;
    const nd = this.curDenseCount;
    for (let s = fromSum; s <= lastSum; s++) {
      let sacc = wildSum[s]!;
      for (let k = 0; k < nd && sacc !== 0; k++) sacc &= this.fieldSum(dense[k]!, s);
      if (s === fromSum) sacc &= (0xffffffff << (fromWord & 31)) | 0;
      while (sacc !== 0) {
        const j = ctz(sacc);
        sacc &= sacc - 1;
        const w = (s << 5) | j;
        if (w > lastWord) return best < n ? best : -1;
        let acc = wild[w]!;
        for (let k = 0; k < nd && acc !== 0; k++) acc &= this.fieldWord(dense[k]!, w);
        if (w === fromWord) acc &= (0xffffffff << (from & 31)) | 0;
        if (acc !== 0) {
          const t = (w << 5) | ctz(acc);
          return t < best ? t : best < n ? best : -1;
        }
      }
    }
    return best < n ? best : -1;
  }
}
