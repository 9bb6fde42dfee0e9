/**
 * Virtual reassembly of IP fragments: the first fragment decides, the others follow its verdict.
 *
 * Only the fragment at offset 0 carries the transport header (RFC 791 §3.1; RFC 8200 §4.5), so port, flag and
 * name rules can judge only it. This tracker remembers, per datagram, what the chain decided for that first
 * fragment and applies it to every other fragment of the same datagram; it never rebuilds the datagram (the end
 * host does), but it keeps the byte ranges it has seen, so it can refuse what would let the end host rebuild
 * something other than what the rules judged:
 *
 *   - tiny first fragments, which do not hold the whole transport header (RFC 1858 §3.1, RFC 3128 §3; RFC 8200
 *     §4.5 and RFC 7112: the first fragment must hold every header up to and including the upper-layer one);
 *   - overlapping fragments (RFC 1858 §4, RFC 3128 §2: a fragment at offset 8 rewrites TCP's flags and ports;
 *     RFC 5722 §4 and RFC 8200 §4.5: for IPv6 the whole datagram is discarded). We discard the whole datagram for
 *     both families, as Linux does since 4.19 for IPv4 too: an overlap has no legitimate use, and without the
 *     bytes we cannot tell which copy the end host keeps. An exact duplicate (same offset and length) is dropped
 *     alone (RFC 8200 §4.5 allows this);
 *   - fragments that disagree on the datagram's end, or reach past 65,535 bytes.
 *
 * Fragments that arrive before their first fragment wait here (the whole GENEVE datagram copied) until it is
 * decided; held fragments and datagrams are bounded by FragmentLimits, and a datagram whose first fragment has not
 * been decided within timeoutMs of its first sighting is dropped with everything held for it.
 *
 * Datagram key: IP version, protocol, Identification (16 bits in IPv4, 32 in IPv6), source and destination
 * address, and the GWLB endpoint id (VPCs overlap: docs/architecture.md §2). Numeric keys in typed arrays, chained hash
 * buckets, a creation-order list for expiry (one timeout for all entries, so creation order is expiry order).
 * Nothing here runs for a packet that is not a fragment.
 */
import { Buffer } from 'node:buffer';
import type { InnerPacket } from '../packet/types.js';

/** Bounds of one worker's tracker (settings fragmentMaxDatagrams, fragmentMemcapBytes, ...). */
export interface FragmentLimits {
  /** Datagrams tracked at once; a fragment of a new datagram beyond this is dropped. */
  maxDatagrams: number;
  /** Bytes of held fragments (whole GENEVE datagrams) at once. */
  memcapBytes: number;
  /** How long a datagram is tracked after its first fragment (of any offset) arrived, ms. */
  timeoutMs: number;
  /** Fragments accepted per datagram; one more drops the datagram. */
  maxFragmentsPerDatagram: number;
}

/** What happens to a fragment now. */
export const FRAGMENT_RESULT = {
  PASS: 0,
  DROP: 1,
  /** Copied into the tracker; released or dropped when its first fragment is decided, or dropped on expiry. */
  HELD: 2,
} as const;
export type FragmentResult = (typeof FRAGMENT_RESULT)[keyof typeof FRAGMENT_RESULT];

/** Counter slots (indices into the counters array given to the tracker). Stable: they index FRAGMENT_COUNTER_NAMES. */
export const FRAGMENT_COUNTER = {
  /** Datagrams the tracker started to follow. */
  DATAGRAMS: 0,
  /** Datagrams whose every byte was seen after the first fragment was decided (entry freed early). */
  COMPLETED: 1,
  /** Non-first fragments passed because their first fragment passed (held ones included, when released). */
  PASSED_FOLLOWING: 2,
  /** Fragments dropped because their datagram's verdict is drop or reject (or it was dropped as an anomaly). */
  DROPPED_FOLLOWING: 3,
  /** Fragments held because their first fragment was not decided yet. */
  HELD: 4,
  /** Held fragments released after their first fragment passed. */
  RELEASED: 5,
  /** Held fragments dropped because their datagram expired before its first fragment was decided. */
  TIMEOUT_DROPPED: 6,
  /** First fragments without the whole transport header (RFC 1858, RFC 3128, RFC 7112): datagram dropped. */
  TINY_DROPPED: 7,
  /** Datagrams dropped for overlapping fragments (RFC 1858, RFC 5722). */
  OVERLAP_DROPPED: 8,
  /** Exact duplicates of a fragment already seen: the duplicate is dropped, the datagram goes on. */
  DUPLICATE_DROPPED: 9,
  /** Datagrams dropped because fragments disagree on its end or reach past 65,535 bytes, or a fragment is empty. */
  BAD_LENGTH_DROPPED: 10,
  /** Datagrams dropped for having more than maxFragmentsPerDatagram fragments. */
  TOO_MANY_DROPPED: 11,
  /** Fragments that could not be held (memcap): dropped, and their datagram with them. */
  MEMCAP_DROPPED: 12,
  /** Fragments of a new datagram dropped because maxDatagrams are tracked already. */
  TABLE_FULL_DROPPED: 13,
  /** Held fragments discarded when their datagram was dropped (verdict or anomaly). */
  HELD_DISCARDED: 14,
  /** Gauges, updated on every change: datagrams tracked now, bytes held now. */
  DATAGRAMS_NOW: 15,
  HELD_BYTES_NOW: 16,
} as const;

export const FRAGMENT_COUNTER_NAMES: readonly string[] = Object.freeze(
  (Object.keys(FRAGMENT_COUNTER) as (keyof typeof FRAGMENT_COUNTER)[]).reduce<string[]>((names, k) => {
    names[FRAGMENT_COUNTER[k]] = k;
    return names;
  }, []),
);

/** Counter slots that count dropped fragments or datagrams (for drop-reason listings). */
export const FRAGMENT_DROP_COUNTERS: readonly number[] = [
  FRAGMENT_COUNTER.DROPPED_FOLLOWING,
  FRAGMENT_COUNTER.TIMEOUT_DROPPED,
  FRAGMENT_COUNTER.TINY_DROPPED,
  FRAGMENT_COUNTER.OVERLAP_DROPPED,
  FRAGMENT_COUNTER.DUPLICATE_DROPPED,
  FRAGMENT_COUNTER.BAD_LENGTH_DROPPED,
  FRAGMENT_COUNTER.TOO_MANY_DROPPED,
  FRAGMENT_COUNTER.MEMCAP_DROPPED,
  FRAGMENT_COUNTER.TABLE_FULL_DROPPED,
];

/** A held fragment: a copy of its whole GENEVE datagram and the outer addressing to send it later. */
export interface HeldFragment {
  readonly data: Buffer;
  /** Fragment Offset in bytes (release order). */
  readonly offset: number;
  readonly localAddr: number;
  readonly gwlbAddr: number;
  readonly gwlbPort: number;
}

/** Receives each held fragment that a pass verdict releases, in offset order. */
export type ReleaseFragment = (h: HeldFragment) => void;

/** Largest IP datagram (RFC 791 §3.1 Total Length; RFC 8200 §3 Payload Length without a Jumbo option). */
export const MAX_DATAGRAM_BYTES = 65_535;

// IANA protocol numbers whose header the first fragment must hold, and that header's fixed size in bytes
// (TCP RFC 9293 §3.1: 20 before options; UDP RFC 768: 8; ICMP/ICMPv6 RFC 792 / RFC 4443 §2.1: 8 with the
// echo identifier). Before the first fragment arrives, a later fragment starting inside this many bytes
// rewrites the header (RFC 1858 §4: TCP at offset 8 reaches the flags).
const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMPV6 = 58;
const TCP_MIN_HEADER_BYTES = 20;
const UDP_HEADER_BYTES = 8;
const ICMP_HEADER_BYTES = 8;

function minimumHeaderBytes(protocol: number): number {
  if (protocol === PROTO_TCP) return TCP_MIN_HEADER_BYTES;
  if (protocol === PROTO_UDP) return UDP_HEADER_BYTES;
  if (protocol === PROTO_ICMP || protocol === PROTO_ICMPV6) return ICMP_HEADER_BYTES;
  return 0;
}

const STATE = {
  FREE: 0,
  /** No first fragment yet: others wait. */
  WAITING: 1,
  /** The first fragment is held by a stage of the chain: others wait for its flow's verdict. */
  PENDING: 2,
  PASS: 3,
  DROP: 4,
} as const;

const NONE = -1;
const HASH_MIX = 0x9e3779b1;

function isPass(action: number): boolean {
  // ACTION.PASS (1) and ACTION.ALERT (4) of src/pipeline/stage.ts let packets through; anything else blocks.
  return action === 1 || action === 4;
}

export class FragmentTracker {
  readonly limits: Readonly<FragmentLimits>;
  /** FRAGMENT_COUNTER slots; may be a view into the worker's shared counters. */
  readonly counters: Float64Array;
  /** Datagrams whose first fragment is held by a stage (PENDING): resolveFlow has work only when > 0. */
  pending = 0;
  /** Datagrams tracked now. */
  size = 0;
  /** Bytes held now. */
  heldBytes = 0;

  private readonly mask: number;
  private readonly buckets: Int32Array;
  private readonly next: Int32Array;
  private readonly older: Int32Array;
  private readonly newer: Int32Array;
  private oldest = NONE;
  private newest = NONE;
  private freeHead: number;
  private readonly state: Uint8Array;
  private readonly kProto: Uint16Array; // protocol | ipVersion << 8
  private readonly kId: Uint32Array;
  private readonly kEp: Uint32Array; // 2 per entry
  private readonly kAddr: Uint32Array; // 8 per entry: src[0..3], dst[0..3]
  private readonly createdMs: Float64Array;
  private readonly flow: Int32Array;
  /** End of the datagram's fragmentable part in bytes (from the fragment with MF/M = 0), -1 while unknown. */
  private readonly end: Int32Array;
  /** Bytes of distinct fragments seen (overlaps are refused, so this is the covered length). */
  private readonly covered: Int32Array;
  /** Accepted fragment ranges per entry: start, end pairs. Allocated on first use of the entry, then reused. */
  private readonly ranges: (number[] | undefined)[];
  private readonly held: (HeldFragment[] | undefined)[];

  constructor(limits: FragmentLimits, counters: Float64Array = new Float64Array(FRAGMENT_COUNTER_NAMES.length)) {
    this.limits = Object.freeze({ ...limits });
    this.counters = counters;
    const n = limits.maxDatagrams;
    let buckets = 16;
    while (buckets < n * 2) buckets *= 2;
    this.mask = buckets - 1;
    this.buckets = new Int32Array(buckets).fill(NONE);
    this.next = new Int32Array(n);
    this.older = new Int32Array(n).fill(NONE);
    this.newer = new Int32Array(n).fill(NONE);
    for (let i = 0; i < n; i++) this.next[i] = i + 1 < n ? i + 1 : NONE;
    this.freeHead = n > 0 ? 0 : NONE;
    this.state = new Uint8Array(n);
    this.kProto = new Uint16Array(n);
    this.kId = new Uint32Array(n);
    this.kEp = new Uint32Array(n * 2);
    this.kAddr = new Uint32Array(n * 8);
    this.createdMs = new Float64Array(n);
    this.flow = new Int32Array(n).fill(NONE);
    this.end = new Int32Array(n).fill(NONE);
    this.covered = new Int32Array(n);
    this.ranges = new Array<number[] | undefined>(n).fill(undefined);
    this.held = new Array<HeldFragment[] | undefined>(n).fill(undefined);
  }

  private bump(slot: number, n = 1): void {
    this.counters[slot] = (this.counters[slot] as number) + n;
  }

  private gauges(): void {
    this.counters[FRAGMENT_COUNTER.DATAGRAMS_NOW] = this.size;
    this.counters[FRAGMENT_COUNTER.HELD_BYTES_NOW] = this.heldBytes;
  }

  private hash(pkt: InnerPacket, epHi: number, epLo: number): number {
    const s = pkt.src;
    const d = pkt.dst;
    let h = Math.imul(pkt.fragmentId ^ (pkt.protocol << 24) ^ (pkt.ipVersion << 16), HASH_MIX);
    h = Math.imul(h ^ (s[0] as number) ^ (d[0] as number), HASH_MIX);
    h = Math.imul(h ^ (s[1] as number) ^ (d[1] as number), HASH_MIX);
    h = Math.imul(h ^ (s[2] as number) ^ (d[2] as number), HASH_MIX);
    h = Math.imul(h ^ (s[3] as number), HASH_MIX);
    h = Math.imul(h ^ (d[3] as number), HASH_MIX);
    h = Math.imul(h ^ epHi ^ epLo, HASH_MIX);
    return (h ^ (h >>> 16)) & this.mask;
  }

  private matches(e: number, pkt: InnerPacket, epHi: number, epLo: number): boolean {
    const a = this.kAddr;
    const b = e * 8;
    const s = pkt.src;
    const d = pkt.dst;
    return (
      this.kId[e] === pkt.fragmentId >>> 0 &&
      this.kProto[e] === (pkt.protocol | (pkt.ipVersion << 8)) &&
      a[b + 3] === s[3] &&
      a[b + 7] === d[3] &&
      a[b] === s[0] &&
      a[b + 1] === s[1] &&
      a[b + 2] === s[2] &&
      a[b + 4] === d[0] &&
      a[b + 5] === d[1] &&
      a[b + 6] === d[2] &&
      this.kEp[e * 2] === epHi >>> 0 &&
      this.kEp[e * 2 + 1] === epLo >>> 0
    );
  }

  /** The datagram's entry, or NONE; an expired entry is dropped on the way (so expiry needs no timer to be exact). */
  private find(pkt: InnerPacket, epHi: number, epLo: number, nowMs: number): number {
    for (let e = this.buckets[this.hash(pkt, epHi, epLo)] as number; e !== NONE; e = this.next[e] as number) {
      if (!this.matches(e, pkt, epHi, epLo)) continue;
      if (nowMs - (this.createdMs[e] as number) >= this.limits.timeoutMs) {
        this.expireEntry(e);
        return NONE;
      }
      return e;
    }
    return NONE;
  }

  private create(pkt: InnerPacket, epHi: number, epLo: number, nowMs: number): number {
    const e = this.freeHead;
    if (e === NONE) return NONE;
    this.freeHead = this.next[e] as number;
    const bucket = this.hash(pkt, epHi, epLo);
    this.next[e] = this.buckets[bucket] as number;
    this.buckets[bucket] = e;
    this.state[e] = STATE.WAITING;
    this.kProto[e] = pkt.protocol | (pkt.ipVersion << 8);
    this.kId[e] = pkt.fragmentId >>> 0;
    this.kEp[e * 2] = epHi >>> 0;
    this.kEp[e * 2 + 1] = epLo >>> 0;
    const a = this.kAddr;
    const b = e * 8;
    for (let i = 0; i < 4; i++) {
      a[b + i] = pkt.src[i] as number;
      a[b + 4 + i] = pkt.dst[i] as number;
    }
    this.createdMs[e] = nowMs;
    this.flow[e] = NONE;
    this.end[e] = NONE;
    this.covered[e] = 0;
    const r = this.ranges[e];
    if (r === undefined) this.ranges[e] = [];
    else r.length = 0;
    // Creation-order list (newest at the tail): with one timeout for all, the head expires first.
    this.older[e] = this.newest;
    this.newer[e] = NONE;
    if (this.newest !== NONE) this.newer[this.newest] = e;
    else this.oldest = e;
    this.newest = e;
    this.size++;
    this.bump(FRAGMENT_COUNTER.DATAGRAMS);
    this.gauges();
    return e;
  }

  private free(e: number): void {
    if (this.state[e] === STATE.PENDING) this.pending--;
    this.discardHeld(e, FRAGMENT_COUNTER.HELD_DISCARDED);
    // Unlink from its bucket (recomputing the bucket needs the key: walk from the stored one).
    const bucket = this.bucketOf(e);
    let prev = NONE;
    for (let x = this.buckets[bucket] as number; x !== NONE; prev = x, x = this.next[x] as number) {
      if (x !== e) continue;
      if (prev === NONE) this.buckets[bucket] = this.next[e] as number;
      else this.next[prev] = this.next[e] as number;
      break;
    }
    const o = this.older[e] as number;
    const w = this.newer[e] as number;
    if (o !== NONE) this.newer[o] = w;
    else this.oldest = w;
    if (w !== NONE) this.older[w] = o;
    else this.newest = o;
    this.state[e] = STATE.FREE;
    this.next[e] = this.freeHead;
    this.freeHead = e;
    this.size--;
    this.gauges();
  }

  private bucketOf(e: number): number {
    const a = this.kAddr;
    const b = e * 8;
    const kp = this.kProto[e] as number;
    let h = Math.imul((this.kId[e] as number) ^ ((kp & 0xff) << 24) ^ ((kp >>> 8) << 16), HASH_MIX);
    h = Math.imul(h ^ (a[b] as number) ^ (a[b + 4] as number), HASH_MIX);
    h = Math.imul(h ^ (a[b + 1] as number) ^ (a[b + 5] as number), HASH_MIX);
    h = Math.imul(h ^ (a[b + 2] as number) ^ (a[b + 6] as number), HASH_MIX);
    h = Math.imul(h ^ (a[b + 3] as number), HASH_MIX);
    h = Math.imul(h ^ (a[b + 7] as number), HASH_MIX);
    h = Math.imul(h ^ (this.kEp[e * 2] as number) ^ (this.kEp[e * 2 + 1] as number), HASH_MIX);
    return (h ^ (h >>> 16)) & this.mask;
  }

  private discardHeld(e: number, slot: number): void {
    const held = this.held[e];
    if (held === undefined || held.length === 0) return;
    this.bump(slot, held.length);
    for (const h of held) this.heldBytes -= h.data.length;
    held.length = 0;
    this.gauges();
  }

  private expireEntry(e: number): void {
    // Held fragments of a datagram that was never decided: the timeout drops them.
    this.discardHeld(e, FRAGMENT_COUNTER.TIMEOUT_DROPPED);
    this.free(e);
  }

  /** Marks the datagram dropped: what is held for it is discarded, its later fragments will be dropped. */
  private dropDatagram(e: number, slot: number): void {
    if (this.state[e] === STATE.PENDING) this.pending--;
    this.state[e] = STATE.DROP;
    this.bump(slot);
    this.discardHeld(e, FRAGMENT_COUNTER.HELD_DISCARDED);
  }

  /**
   * Records [start, stop) for entry e. Returns 0 when accepted, else the counter slot of the anomaly
   * (DUPLICATE_DROPPED drops the fragment alone; any other slot drops the datagram).
   */
  private accept(e: number, start: number, stop: number, last: boolean, headerBytes: number): number {
    if (stop === start || stop > MAX_DATAGRAM_BYTES) return FRAGMENT_COUNTER.BAD_LENGTH_DROPPED;
    const end = this.end[e] as number;
    // RFC 8200 §4.5 / RFC 791: the fragment with M = 0 fixes the datagram's length; no fragment may reach past it.
    if (last && end !== NONE && stop !== end) return FRAGMENT_COUNTER.BAD_LENGTH_DROPPED;
    if (!last && end !== NONE && stop > end) return FRAGMENT_COUNTER.BAD_LENGTH_DROPPED;
    // RFC 1858 §4: a non-first fragment starting inside the transport header rewrites it.
    if (start > 0 && start < headerBytes) return FRAGMENT_COUNTER.OVERLAP_DROPPED;
    const r = this.ranges[e] as number[];
    for (let i = 0; i < r.length; i += 2) {
      const a = r[i] as number;
      const b = r[i + 1] as number;
      if (a === start && b === stop) return FRAGMENT_COUNTER.DUPLICATE_DROPPED;
      if (start < b && a < stop) return FRAGMENT_COUNTER.OVERLAP_DROPPED;
      if (last && b > stop) return FRAGMENT_COUNTER.BAD_LENGTH_DROPPED;
    }
    if (r.length / 2 >= this.limits.maxFragmentsPerDatagram) return FRAGMENT_COUNTER.TOO_MANY_DROPPED;
    r.push(start, stop);
    if (last) this.end[e] = stop;
    this.covered[e] = (this.covered[e] as number) + (stop - start);
    return 0;
  }

  /** A decided datagram whose every byte has been seen needs no entry any more. */
  private freeIfComplete(e: number): void {
    const end = this.end[e] as number;
    if (end !== NONE && this.covered[e] === end && (this.state[e] === STATE.PASS || this.state[e] === STATE.DROP)) {
      this.bump(FRAGMENT_COUNTER.COMPLETED);
      this.free(e);
    }
  }

  /**
   * A first fragment (offset 0, more to come) that decoded with its whole transport header. Returns the entry
   * whose verdict the caller records with decide() or pend() after the chain ran, or -1: drop the fragment
   * (duplicate, overlap, a datagram already dropped, table full; counted).
   */
  first(pkt: InnerPacket, epHi: number, epLo: number, nowMs: number): number {
    let e = this.find(pkt, epHi, epLo, nowMs);
    if (e === NONE) {
      e = this.create(pkt, epHi, epLo, nowMs);
      if (e === NONE) {
        this.bump(FRAGMENT_COUNTER.TABLE_FULL_DROPPED);
        return NONE;
      }
    } else if (this.state[e] !== STATE.WAITING) {
      // Another first fragment for a datagram already judged: a duplicate (dropped alone) or a rewrite.
      if (this.state[e] === STATE.DROP) {
        this.bump(FRAGMENT_COUNTER.DROPPED_FOLLOWING);
        return NONE;
      }
      const anomaly = this.accept(e, 0, this.dataStop(pkt), !pkt.moreFragments, 0);
      if (anomaly === FRAGMENT_COUNTER.DUPLICATE_DROPPED) this.bump(anomaly);
      else if (anomaly !== 0) this.dropDatagram(e, anomaly);
      return NONE;
    }
    // Held fragments that overlap it (a fragment at offset 8 rewriting TCP's flags, RFC 1858 §4, included, since
    // decodeInner refused a first fragment without the whole transport header) drop the datagram here.
    const anomaly = this.accept(e, 0, this.dataStop(pkt), !pkt.moreFragments, 0);
    if (anomaly !== 0) {
      this.dropDatagram(e, anomaly);
      return NONE;
    }
    return e;
  }

  private dataStop(pkt: InnerPacket): number {
    return pkt.fragmentOffset + (pkt.l3Offset + pkt.ipLength - pkt.fragmentDataOffset);
  }

  /** A first fragment that does not hold its whole transport header: its datagram is dropped (counted). */
  tiny(pkt: InnerPacket, epHi: number, epLo: number, nowMs: number): void {
    let e = this.find(pkt, epHi, epLo, nowMs);
    if (e === NONE) e = this.create(pkt, epHi, epLo, nowMs);
    if (e === NONE) {
      this.bump(FRAGMENT_COUNTER.TABLE_FULL_DROPPED);
      return;
    }
    if (this.state[e] === STATE.DROP) this.bump(FRAGMENT_COUNTER.TINY_DROPPED);
    else this.dropDatagram(e, FRAGMENT_COUNTER.TINY_DROPPED);
  }

  /** Number of fragments held for entry e. */
  heldCount(e: number): number {
    return this.held[e]?.length ?? 0;
  }

  /**
   * The chain decided the first fragment of entry e (returned by first()) with `action` (ACTION of
   * src/pipeline/stage.ts). Pass or alert releases what is held, in offset order, through `release`; anything
   * else discards it. Later fragments will follow the same verdict.
   */
  decide(e: number, action: number, release: ReleaseFragment): void {
    const st = this.state[e] as number;
    if (st === STATE.FREE || st === STATE.PASS || st === STATE.DROP) return;
    if (st === STATE.PENDING) this.pending--;
    if (!isPass(action)) {
      this.state[e] = STATE.DROP;
      this.discardHeld(e, FRAGMENT_COUNTER.DROPPED_FOLLOWING);
      this.freeIfComplete(e);
      return;
    }
    this.state[e] = STATE.PASS;
    const held = this.held[e];
    if (held !== undefined && held.length > 0) {
      // Insertion sort: a handful of fragments, already nearly in order.
      for (let i = 1; i < held.length; i++) {
        const h = held[i] as HeldFragment;
        let j = i - 1;
        while (j >= 0 && (held[j] as HeldFragment).offset > h.offset) {
          held[j + 1] = held[j] as HeldFragment;
          j--;
        }
        held[j + 1] = h;
      }
      for (const h of held) {
        this.heldBytes -= h.data.length;
        release(h);
      }
      this.bump(FRAGMENT_COUNTER.RELEASED, held.length);
      this.bump(FRAGMENT_COUNTER.PASSED_FOLLOWING, held.length);
      held.length = 0;
      this.gauges();
    }
    this.freeIfComplete(e);
  }

  /** The chain held the first fragment of entry e (flow `flow`): later fragments wait for that flow's verdict. */
  pend(e: number, flow: number): void {
    if (this.state[e] !== STATE.WAITING) return;
    this.state[e] = STATE.PENDING;
    this.flow[e] = flow;
    this.pending++;
  }

  /** The flow's held packets were released (pass) or discarded: datagrams pending on it follow. */
  resolveFlow(flow: number, action: number, release: ReleaseFragment): void {
    if (this.pending === 0) return;
    for (let e = this.oldest; e !== NONE; ) {
      const n = this.newer[e] as number;
      if (this.state[e] === STATE.PENDING && this.flow[e] === flow) this.decide(e, action, release);
      e = n;
    }
  }

  /**
   * A non-first fragment (pkt.isLaterFragment). PASS or DROP follow the datagram's verdict; HELD means the
   * tracker copied buf[off, off + len) (the whole GENEVE datagram) to release or drop it later.
   */
  later(pkt: InnerPacket, epHi: number, epLo: number, nowMs: number, buf: Buffer, off: number, len: number, localAddr: number, gwlbAddr: number, gwlbPort: number): FragmentResult {
    let e = this.find(pkt, epHi, epLo, nowMs);
    if (e === NONE) {
      e = this.create(pkt, epHi, epLo, nowMs);
      if (e === NONE) {
        this.bump(FRAGMENT_COUNTER.TABLE_FULL_DROPPED);
        return FRAGMENT_RESULT.DROP;
      }
    }
    const st = this.state[e] as number;
    const start = pkt.fragmentOffset;
    const stop = this.dataStop(pkt);
    if (st === STATE.DROP) {
      // Still counted toward completion, so a dropped datagram leaves the table once all of it went by.
      this.accept(e, start, stop, !pkt.moreFragments, 0);
      this.bump(FRAGMENT_COUNTER.DROPPED_FOLLOWING);
      this.freeIfComplete(e);
      return FRAGMENT_RESULT.DROP;
    }
    const anomaly = this.accept(e, start, stop, !pkt.moreFragments, minimumHeaderBytes(pkt.protocol));
    if (anomaly === FRAGMENT_COUNTER.DUPLICATE_DROPPED) {
      this.bump(anomaly);
      return FRAGMENT_RESULT.DROP;
    }
    if (anomaly !== 0) {
      this.dropDatagram(e, anomaly);
      return FRAGMENT_RESULT.DROP;
    }
    if (st === STATE.PASS) {
      this.bump(FRAGMENT_COUNTER.PASSED_FOLLOWING);
      this.freeIfComplete(e);
      return FRAGMENT_RESULT.PASS;
    }
    // WAITING or PENDING: keep a copy until the first fragment is decided.
    if (this.heldBytes + len > this.limits.memcapBytes) {
      this.dropDatagram(e, FRAGMENT_COUNTER.MEMCAP_DROPPED);
      return FRAGMENT_RESULT.DROP;
    }
    const data = Buffer.allocUnsafe(len);
    buf.copy(data, 0, off, off + len);
    let held = this.held[e];
    if (held === undefined) {
      held = [];
      this.held[e] = held;
    }
    held.push({ data, offset: start, localAddr, gwlbAddr, gwlbPort });
    this.heldBytes += len;
    this.bump(FRAGMENT_COUNTER.HELD);
    this.gauges();
    return FRAGMENT_RESULT.HELD;
  }

  /** Timer work: frees every datagram older than timeoutMs (oldest first; held fragments count as timed out). */
  expire(nowMs: number): number {
    let n = 0;
    while (this.oldest !== NONE && nowMs - (this.createdMs[this.oldest] as number) >= this.limits.timeoutMs) {
      this.expireEntry(this.oldest);
      n++;
    }
    return n;
  }
}
