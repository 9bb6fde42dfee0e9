/**
 * The per-worker flow table (docs/architecture.md §3): one entry per flow, found from either direction by a symmetric key,
 * holding the flow's verdict, counters, timestamps and the newest GENEVE header GWLB sent with it.
 *
 * Layout: a flow is an index into typed arrays. No per-flow JS objects, no string keys, no Map: a lookup is a
 * hash, one bucket read and a walk of a short chain comparing numbers, and allocates nothing.
 * - The fields a lookup and an LRU move touch live together in one 64-byte record per flow (hash, chain link,
 *   LRU links, and the whole key: the 8 address words, both ports, protocol, IP version and the 64-bit GWLB
 *   endpoint id, see key.ts; plus the class): a lookup reads the bucket and one record, and the LRU move
 *   rewrites neighbours' records instead of a line in each of several arrays. Last-seen per direction lives in
 *   lastSeenMs (touch writes it anyway); only expiry and eviction read it, at list heads.
 *   Measured with 1,000,000 flows, random order, on this 2-core VM: find() costs the same either way
 *   (~500 ns, dominated by two dependent cache/TLB misses), lookup() with its LRU move ~20 % less than with
 *   one array per field (~500 vs ~640 ns).
 * - Every other field is struct-of-arrays (public typed arrays: action, ruleId, counters, cookie …), each as
 *   narrow as its range allows: times are whole ms since the table's base in 32 bits (rebased every ~12 days),
 *   packet counters 32 bits (modulo 2^32), byte counters and flow ids 64-bit floats.
 *
 *   buckets[hash & mask] ─> flow + 1 ─chain─> flow ─> -1         (chained hash index, load factor ≤ 0.5)
 *   listHead[class] ─> oldest ⇄ … ⇄ newest <─ listTail[class]   (intrusive LRU lists, links in the records)
 *
 * Memory: storage starts at `initialCapacity` flows and doubles up to `maxFlows` (the hard cap). Each storage
 * generation is one ArrayBuffer that every array is a view of: a generation is larger than any freed before it,
 * so the allocator maps it fresh and unmaps it when freed, instead of keeping freed arrays in the heap (27 MB of
 * RSS at 1,000,000 flows when each field had its own buffer). A generation starts zero-filled and untouched
 * pages are not committed (empty buckets are 0, so nothing is filled up front): initialCapacity = maxFlows costs
 * RSS only for the flows written (bench: +0.1 MB for an empty 1,000,000-flow table), which is what the workers
 * use — a freed generation is unmapped only when V8 collects its ArrayBuffer, and in the running appliance the
 * half-size generation was still mapped at 1,000,000 flows (+116 MB). ~133 bytes per flow
 * (FLOW_BYTES_PER_FLOW_FIXED + buckets; flowTableBytes adds the header pool). Measured with
 * `node scripts/bench.mjs --only memory` (one worker, 1,000,000 distinct UDP flows): +143 MB of RSS over idle,
 * 150 B/flow — the table, the firewall's 5 bytes per decided flow and the packet buffers that traffic touches
 * (~11 MB); before this layout and the preallocation it was +350 MB. Arrays are *replaced* when the table grows:
 * read fields through the table each time (`table.action[flow]`), never keep a reference to an array across a
 * lookupOrCreate.
 *
 * Idle timeouts (docs/architecture.md §2): our flows must outlive GWLB's, or a flow GWLB still considers alive would come
 * back to us as a "new" midstream flow; the defaults equal GWLB's (TCP 350 s, everything else 120 s).
 * Each idle-timeout class (TCP, other, closed TCP) has its own LRU list. A list is ordered by last-seen time
 * (a touch moves the flow to the tail; the table's clock never goes back), so expiry only ever looks at list
 * heads and costs O(expired), and the least recently seen flow of the whole table is one of three heads.
 *
 * Eviction rule: creating a flow when `maxFlows` flows exist first evicts the least recently seen flow (the
 * oldest of the three list heads; ties go to closed, then other, then TCP). It is counted in `evictions` and
 * reported through onRemove like any removal.
 *
 * Closed TCP flows: once the data plane has seen both FINs or an RST it calls markClosed(flow); the flow then
 * expires after `closedIdleMs` of silence (default 10 s, Linux conntrack's TCP CLOSE timeout) instead of 350 s,
 * so connection churn does not fill the table. 10 s still lets late retransmissions (a lost final ACK makes the
 * peer resend its FIN after an RTO of 0.2 s, 0.4 s, 0.8 s …) match the flow and refresh it. conntrack keeps
 * TIME_WAIT for 120 s; we do not model TIME_WAIT separately: a packet arriving after expiry is a new midstream
 * flow, which the data plane's exception policy handles. A new connection reusing the 5-tuple while the closed
 * entry is still here finds the old entry: the data plane should remove(flow) on a SYN to a closed flow.
 *
 * Fragments: see key.ts. A non-first fragment would be keyed by (protocol, addresses, ports 0), never its 5-tuple
 * flow; the data plane sends it to the fragment tracker (src/flow/fragments.ts) instead of this table.
 *
 * GENEVE headers (up to 260 bytes, RFC 8926): GWLB's header differs between the flows of one endpoint only in
 * the flow cookie, so the bytes are interned once per distinct header in a bounded, reference-counted pool
 * (header-pool.ts, at most `maxHeaderTemplates`) with the outer addresses they came with, and each flow keeps
 * a template index, its cookie and GWLB's source port: copyHeader gives back exactly the bytes of the newest
 * header. When the pool is full a new header is dropped (length 0, counted in headerOverflows) rather than the
 * old one left in place: originating a packet with an old flow cookie is wrong.
 */
import { randomInt } from 'node:crypto';
import type { InnerPacket } from '../packet/types.js';
import { IP_PROTO } from '../packet/types.js';
import { ACTION, DIRECTION, type Action, type Direction, type FlowAccess } from '../pipeline/stage.js';
import { effectiveDstPort, effectiveSrcPort, flowHash } from './key.js';
import { FLOW_MAX_HEADER_TEMPLATES, GENEVE_MAX_HEADER_BYTES, HeaderPool, headerPoolBytes } from './header-pool.js';

export { FLOW_MAX_HEADER_TEMPLATES, GENEVE_MAX_HEADER_BYTES };

/** GWLB's default TCP idle timeout (configurable 60–6000 s on GWLB). */
export const FLOW_IDLE_TCP_MS = 350_000; // 350 s
/** GWLB's idle timeout for UDP and every other protocol. */
export const FLOW_IDLE_OTHER_MS = 120_000; // 120 s
/** Linux conntrack's TCP CLOSE timeout (nf_conntrack_tcp_timeout_close). */
export const FLOW_IDLE_CLOSED_MS = 10_000; // 10 s
/** Shortest closed timeout we accept: late retransmissions must still match. */
export const FLOW_IDLE_CLOSED_MIN_MS = 2_000; // 2 s
export const FLOW_INITIAL_CAPACITY = 4096; // flows
/**
 * Times are kept as whole ms since the table's base (Uint32). When the clock is this far past the base, the base
 * moves up to FLOW_TIME_REBASE_KEEP_MS before now (O(flows), once every ~12 days): 2^31 ms ≈ 24.8 days.
 */
const FLOW_TIME_REBASE_AT_MS = 2 ** 31;
/** After a rebase the base is this far behind now: 2^30 ms ≈ 12.4 days; older times read as the base. */
const FLOW_TIME_REBASE_KEEP_MS = 2 ** 30;
/** Upper bound on maxFlows: keeps every record offset (index × 16 words) within int32 arithmetic. */
export const FLOW_TABLE_MAX_FLOWS_LIMIT = 1 << 26;

/** Idle-timeout class of a flow; also the LRU list it is on. FREE: the index is unused. */
export const FLOW_CLASS = {
  FREE: 0,
  TCP: 1,
  OTHER: 2,
  CLOSED: 3,
  /** Transient: inside its onRemove callback (unlinked, fields still readable). */
  REMOVING: 4,
} as const;
export type FlowClass = (typeof FLOW_CLASS)[keyof typeof FLOW_CLASS];
/** Expiry visits the cheapest, fastest-churning class first; eviction breaks last-seen ties in the same order. */
const LIST_ORDER = [FLOW_CLASS.CLOSED, FLOW_CLASS.OTHER, FLOW_CLASS.TCP] as const;

export const FLOW_TABLE_ERROR = {
  /** Constructor options out of range. */
  OPTIONS: 'FLOW_ERR_OPTIONS',
  /** A flow index that is not a live flow. */
  BAD_FLOW: 'FLOW_ERR_BAD_FLOW',
  /** A header longer than GENEVE allows, or a source/target range outside its buffer. */
  RANGE: 'FLOW_ERR_RANGE',
  /** onRemove tried to create or remove flows. */
  REENTRANT: 'FLOW_ERR_REENTRANT',
} as const;
export type FlowTableErrorCode = (typeof FLOW_TABLE_ERROR)[keyof typeof FLOW_TABLE_ERROR];

/** A fault (our bug or misconfiguration), never a wire anomaly. */
export class FlowTableError extends Error {
  readonly code: FlowTableErrorCode;
  constructor(code: FlowTableErrorCode, message: string) {
    super(message);
    this.name = 'FlowTableError';
    this.code = code;
  }
}

export interface FlowTableOptions {
  /** Hard cap on concurrent flows; creating one more evicts the least recently seen. */
  maxFlows: number;
  /** Idle timeout of TCP flows, ms. Default FLOW_IDLE_TCP_MS (350 s). */
  tcpIdleMs?: number;
  /** Idle timeout of every other protocol, ms. Default FLOW_IDLE_OTHER_MS (120 s). */
  otherIdleMs?: number;
  /** Idle timeout of TCP flows after markClosed, ms. Default FLOW_IDLE_CLOSED_MS (10 s), at least 2 s. */
  closedIdleMs?: number;
  /** Flows allocated up front; storage doubles from here up to maxFlows. Default 4096 (clamped to maxFlows). */
  initialCapacity?: number;
  /** Distinct GENEVE headers (cookie aside) kept at once, header-pool.ts. Default 16,384 (≤ 4 MiB). */
  maxHeaderTemplates?: number;
  /** Hash seed; default random per table (keeps outsiders from aiming flows at one bucket). */
  seed?: number;
}

// Hot record: 16 × 32-bit words (64 bytes) per flow, at rec[flow * REC_WORDS + R_*].
const REC_WORDS = 16;
const REC_SHIFT = 4;
const R_HASH = 0;
/** Next flow in the same hash bucket, -1 at the end. */
const R_CHAIN = 1;
/** LRU neighbours within the flow's class list, -1 at the ends; R_NEXT also links the free list. */
const R_PREV = 2;
const R_NEXT = 3;
/** Initiator address words at +4..+7, responder at +8..+11 (InnerPacket layout, IPv4 mapped). */
const R_ADDR = 4;
/** Initiator port << 16 | responder port. */
const R_PORTS = 12;
/** Protocol in bits 0–7, META_V6 (IP version 6) in bit 8: the key's part of the word; FLOW_CLASS from bit 16. */
const R_META = 13;
const META_PROTOCOL_MASK = 0xff;
const META_V6 = 0x100;
const META_KEY_MASK = META_PROTOCOL_MASK | META_V6;
const META_CLASS_SHIFT = 16;
/** GWLB endpoint id (TLV type 1), high and low 32 bits: the tenant part of the key (0, 0 without the option). */
const R_ENDPOINT_HI = 14;
const R_ENDPOINT_LO = 15;

/**
 * Bytes per flow of every per-flow array: the 64-byte record, 3 × 64-bit fields (flow id, bytes ×2), 8 × 32-bit
 * (created, last seen ×2, packets ×2, cookie, rule, header template), 1 × 16-bit (outer port) and 3 × 8-bit
 * (action, TCP state, flags). Hash buckets come on top (flowTableBytes).
 */
export const FLOW_BYTES_PER_FLOW_FIXED = REC_WORDS * 4 + 3 * 8 + 8 * 4 + 2 + 3;

/**
 * Storage bytes of a full table of `flows` flows: per-flow arrays, hash buckets and a full header pool (~4.6 MiB
 * at the default FLOW_MAX_HEADER_TEMPLATES). A table created with initialCapacity = maxFlows (as the workers
 * do) never holds more; one that grows briefly holds the previous, half-size generation as well.
 */
export function flowTableBytes(flows: number): number {
  return flows * FLOW_BYTES_PER_FLOW_FIXED + bucketCountFor(flows) * 4 + headerPoolBytes();
}

/** Every array of one storage generation, all views of one ArrayBuffer. */
interface Storage {
  rec: Uint32Array;
  recI: Int32Array;
  flowId: Float64Array;
  bytes: Float64Array;
  createdAt: Uint32Array;
  lastSeen: Uint32Array;
  packets: Uint32Array;
  flowCookie: Uint32Array;
  ruleId: Int32Array;
  headerRef: Int32Array;
  /** First flow of each chain plus one: 0 is empty, so a fresh (zeroed, not yet touched) page needs no fill. */
  buckets: Int32Array;
  gwlbPort: Uint16Array;
  action: Uint8Array;
  tcpState: Uint8Array;
  flags: Uint8Array;
}

type ViewCtor<T> = { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; readonly BYTES_PER_ELEMENT: number };

/** Carves a generation for `cap` flows out of one ArrayBuffer, widest elements first so every view is aligned. */
function allocateStorage(cap: number, bucketCount: number): Storage {
  const bytes = cap * FLOW_BYTES_PER_FLOW_FIXED + bucketCount * 4;
  const buffer = new ArrayBuffer(bytes);
  let off = 0;
  const take = <T>(ctor: ViewCtor<T>, length: number): T => {
    const view = new ctor(buffer, off, length);
    off += length * ctor.BYTES_PER_ELEMENT;
    return view;
  };
  const rec = take(Uint32Array, cap * REC_WORDS);
  const s: Storage = {
    rec,
    recI: new Int32Array(buffer, 0, cap * REC_WORDS),
    flowId: take(Float64Array, cap),
    bytes: take(Float64Array, cap * 2),
    createdAt: take(Uint32Array, cap),
    lastSeen: take(Uint32Array, cap * 2),
    packets: take(Uint32Array, cap * 2),
    flowCookie: take(Uint32Array, cap),
    ruleId: take(Int32Array, cap),
    headerRef: take(Int32Array, cap),
    buckets: take(Int32Array, bucketCount),
    gwlbPort: take(Uint16Array, cap),
    action: take(Uint8Array, cap),
    tcpState: take(Uint8Array, cap),
    flags: take(Uint8Array, cap),
  };
  if (off !== bytes) throw new Error(`flow table layout: carved ${off} of ${bytes} bytes`);
  return s;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Load factor ≤ 0.5: a successful lookup visits ~1.25 records on average. */
function bucketCountFor(cap: number): number {
  return nextPowerOfTwo(cap * 2);
}

/** The key bits of the R_META word for a packet: protocol and IP version. */
function keyMeta(pkt: InnerPacket): number {
  return (pkt.protocol & META_PROTOCOL_MASK) | (pkt.ipVersion === 6 ? META_V6 : 0);
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new FlowTableError(FLOW_TABLE_ERROR.OPTIONS, `${name} must be an integer in [${min}, ${max}], got ${v}`);
  }
  return v;
}

function checkMs(name: string, v: number, min: number): number {
  if (!Number.isFinite(v) || v < min) {
    throw new FlowTableError(FLOW_TABLE_ERROR.OPTIONS, `${name} must be a finite number ≥ ${min} ms, got ${v}`);
  }
  return v;
}

export class FlowTable implements FlowAccess {
  readonly maxFlows: number;
  readonly tcpIdleMs: number;
  readonly otherIdleMs: number;
  readonly closedIdleMs: number;
  readonly seed: number;

  /** Called for every removal (expiry, eviction, remove) with the flow's fields still readable; the index is
   * reused afterwards. It must not create or remove flows (FLOW_ERR_REENTRANT). */
  onRemove: ((flow: number) => void) | undefined = undefined;

  /** Set by find / lookup / lookupOrCreate: DIRECTION.TO_SERVER (0) when the packet came from the initiator. */
  direction: Direction = DIRECTION.TO_SERVER;
  /** Set by lookup / lookupOrCreate: true when this call created the flow. */
  created = false;

  /** Live flows. */
  size = 0;
  /** Flows storage is allocated for (≤ maxFlows). */
  capacity: number;
  evictions = 0;
  expirations = 0;
  creations = 0;
  /** Explicit remove() calls that removed a flow. */
  removals = 0;
  /** Headers that could not be kept because every header template was in use (header-pool.ts). */
  headerOverflows = 0;

  // ---- per-flow fields, public (index = flow unless noted); replaced when the table grows ----------------
  /** Unique per table, increasing from 1 (safe integer for logs). */
  flowId!: Float64Array;
  /** Per direction at [flow * 2 + direction] (countPacket), modulo 2^32 (4.3 G packets). */
  packets!: Uint32Array;
  /** Per direction at [flow * 2 + direction] (countPacket). */
  bytes!: Float64Array;
  /** GWLB flow cookie (TLV type 3): from setCookie, and from each header storeHeader keeps that has one. */
  flowCookie!: Uint32Array;
  /** Outer UDP source port of the newest header (GWLB's port; per flow, not part of the header template). */
  gwlbPort!: Uint16Array;
  /** ACTION from pipeline/stage.ts; NONE until a verdict. */
  action!: Uint8Array;
  /** Deciding rule, -1 for none / default. */
  ruleId!: Int32Array;
  /** Free for the firewall's TCP state machine; 0 at creation. */
  tcpState!: Uint8Array;
  /** Bitfield free for the data plane; 0 at creation. */
  flags!: Uint8Array;

  // ---- internals -----------------------------------------------------------------------------------------
  private rec!: Uint32Array;
  private recI!: Int32Array;
  private buckets!: Int32Array;
  /** Whole ms since baseMs (createdMsOf, lastSeenMsOf). */
  private createdAt!: Uint32Array;
  /** Per direction at [flow * 2 + direction]; a direction with no packet yet holds the creation time. */
  private lastSeen!: Uint32Array;
  /** The flow's header template in `headers`, -1 when it has no header. */
  private headerRef!: Int32Array;
  private readonly headers: HeaderPool;
  /** Time origin of `created` / `lastSeen`, whole ms; NaN until the first clock reading. */
  private baseMs = NaN;
  private bucketMask = 0;
  private readonly listHead = new Int32Array([-1, -1, -1, -1, -1]);
  private readonly listTail = new Int32Array([-1, -1, -1, -1, -1]);
  private readonly timeoutMs = new Float64Array(5);
  private freeHead = -1;
  /** Indices below this have been used at least once. */
  private highWater = 0;
  private nextFlowId = 1;
  /** Latest time seen; a stale nowMs is raised to it so the LRU lists stay ordered. */
  private clockMs = -Infinity;
  private inCallback = false;


  constructor(opts: FlowTableOptions) {
    this.maxFlows = checkInt('maxFlows', opts.maxFlows, 1, FLOW_TABLE_MAX_FLOWS_LIMIT);
    this.tcpIdleMs = checkMs('tcpIdleMs', opts.tcpIdleMs ?? FLOW_IDLE_TCP_MS, 1);
    this.otherIdleMs = checkMs('otherIdleMs', opts.otherIdleMs ?? FLOW_IDLE_OTHER_MS, 1);
    this.closedIdleMs = checkMs('closedIdleMs', opts.closedIdleMs ?? FLOW_IDLE_CLOSED_MS, FLOW_IDLE_CLOSED_MIN_MS);
    this.headers = new HeaderPool(checkInt('maxHeaderTemplates', opts.maxHeaderTemplates ?? FLOW_MAX_HEADER_TEMPLATES, 1, 1 << 20));
    this.seed = opts.seed === undefined ? randomInt(0x1_0000_0000) : checkInt('seed', opts.seed, 0, 0xffff_ffff);
    const initial = checkInt('initialCapacity', opts.initialCapacity ?? FLOW_INITIAL_CAPACITY, 1, FLOW_TABLE_MAX_FLOWS_LIMIT);
    this.timeoutMs[FLOW_CLASS.TCP] = this.tcpIdleMs;
    this.timeoutMs[FLOW_CLASS.OTHER] = this.otherIdleMs;
    this.timeoutMs[FLOW_CLASS.CLOSED] = this.closedIdleMs;
    this.capacity = Math.min(initial, this.maxFlows);
    this.adopt(allocateStorage(this.capacity, bucketCountFor(this.capacity)));
  }

  private adopt(s: Storage): void {
    this.rec = s.rec;
    this.recI = s.recI;
    this.flowId = s.flowId;
    this.bytes = s.bytes;
    this.createdAt = s.createdAt;
    this.lastSeen = s.lastSeen;
    this.packets = s.packets;
    this.flowCookie = s.flowCookie;
    this.ruleId = s.ruleId;
    this.headerRef = s.headerRef;
    this.buckets = s.buckets;
    this.bucketMask = s.buckets.length - 1;
    this.gwlbPort = s.gwlbPort;
    this.action = s.action;
    this.tcpState = s.tcpState;
    this.flags = s.flags;
  }

  // ---- lookup ----------------------------------------------------------------------------------------------

  /**
   * Finds the flow of the packet that came through GWLB endpoint (endpointHi, endpointLo) without touching it;
   * sets `direction`. -1 when absent. The endpoint id is GENEVE option type 1 (0, 0 when the option is absent):
   * the same 5-tuple through two endpoints is two flows (key.ts).
   */
  find(pkt: InnerPacket, endpointHi: number, endpointLo: number): number {
    return this.findHashed(pkt, endpointHi, endpointLo, flowHash(pkt, endpointHi, endpointLo, this.seed));
  }

  /** The per-packet lookup: finds the flow, sets `direction`, refreshes last-seen for that direction. */
  lookup(pkt: InnerPacket, endpointHi: number, endpointLo: number, nowMs: number): number {
    this.created = false;
    const f = this.findHashed(pkt, endpointHi, endpointLo, flowHash(pkt, endpointHi, endpointLo, this.seed));
    if (f >= 0) this.touch(f, this.direction, nowMs);
    return f;
  }

  /**
   * lookup, creating the flow (packet's source = initiator, direction 0, `created` true) when absent.
   * At maxFlows the least recently seen flow is evicted first (onRemove runs before this returns).
   */
  lookupOrCreate(pkt: InnerPacket, endpointHi: number, endpointLo: number, nowMs: number): number {
    const h = flowHash(pkt, endpointHi, endpointLo, this.seed);
    const found = this.findHashed(pkt, endpointHi, endpointLo, h);
    if (found >= 0) {
      this.created = false;
      this.touch(found, this.direction, nowMs);
      return found;
    }
    return this.create(pkt, endpointHi, endpointLo, h, nowMs);
  }

  private findHashed(pkt: InnerPacket, endpointHi: number, endpointLo: number, h: number): number {
    const meta = keyMeta(pkt);
    const epHi = endpointHi >>> 0;
    const epLo = endpointLo >>> 0;
    const sp = effectiveSrcPort(pkt);
    const dp = effectiveDstPort(pkt);
    const fwdPorts = ((sp << 16) | dp) >>> 0;
    const revPorts = ((dp << 16) | sp) >>> 0;
    const s = pkt.src;
    const d = pkt.dst;
    const s0 = s[0];
    const s1 = s[1];
    const s2 = s[2];
    const s3 = s[3];
    const d0 = d[0];
    const d1 = d[1];
    const d2 = d[2];
    const d3 = d[3];
    const rec = this.rec;
    const recI = this.recI;
    let f = (this.buckets[h & this.bucketMask] as number) - 1;
    while (f >= 0) {
      const r = f << REC_SHIFT;
      if (
        rec[r + R_HASH] === h &&
        ((rec[r + R_META] as number) & META_KEY_MASK) === meta &&
        rec[r + R_ENDPOINT_LO] === epLo &&
        rec[r + R_ENDPOINT_HI] === epHi
      ) {
        const ports = rec[r + R_PORTS];
        const a = r + R_ADDR;
        if (
          ports === fwdPorts &&
          rec[a] === s0 && rec[a + 1] === s1 && rec[a + 2] === s2 && rec[a + 3] === s3 &&
          rec[a + 4] === d0 && rec[a + 5] === d1 && rec[a + 6] === d2 && rec[a + 7] === d3
        ) {
          this.direction = DIRECTION.TO_SERVER;
          return f;
        }
        if (
          ports === revPorts &&
          rec[a] === d0 && rec[a + 1] === d1 && rec[a + 2] === d2 && rec[a + 3] === d3 &&
          rec[a + 4] === s0 && rec[a + 5] === s1 && rec[a + 6] === s2 && rec[a + 7] === s3
        ) {
          this.direction = DIRECTION.TO_CLIENT;
          return f;
        }
      }
      f = recI[r + R_CHAIN] as number;
    }
    return -1;
  }

  /** Raises the clock to nowMs; returns it as whole ms since baseMs (what `created` / `lastSeen` hold). */
  private advanceClock(nowMs: number): number {
    if (nowMs > this.clockMs) this.clockMs = nowMs;
    if (this.baseMs !== this.baseMs) this.baseMs = Math.floor(this.clockMs);
    const rel = this.clockMs - this.baseMs;
    if (rel >= FLOW_TIME_REBASE_AT_MS) this.rebase();
    return Math.floor(this.clockMs - this.baseMs);
  }

  /** Moves baseMs up so the clock fits 32 bits again; times before the new base read as the base. */
  private rebase(): void {
    const next = Math.floor(this.clockMs) - FLOW_TIME_REBASE_KEEP_MS;
    const shift = next - this.baseMs;
    this.baseMs = next;
    const created = this.createdAt;
    const seen = this.lastSeen;
    for (let f = 0; f < this.highWater; f++) {
      const c = created[f] as number;
      created[f] = c > shift ? c - shift : 0;
      const a = seen[f << 1] as number;
      seen[f << 1] = a > shift ? a - shift : 0;
      const b = seen[(f << 1) + 1] as number;
      seen[(f << 1) + 1] = b > shift ? b - shift : 0;
    }
  }

  private touch(f: number, dir: Direction, nowMs: number): void {
    const now = this.advanceClock(nowMs);
    this.lastSeen[(f << 1) + dir] = now;
    const cls = this.classBits(f);
    if (this.listTail[cls] !== f) {
      this.unlinkLru(f, cls);
      this.insertLruAfter(f, cls, this.listTail[cls] as number);
    }
  }

  private create(pkt: InnerPacket, endpointHi: number, endpointLo: number, h: number, nowMs: number): number {
    if (this.inCallback) throw new FlowTableError(FLOW_TABLE_ERROR.REENTRANT, 'onRemove must not create flows');
    const now = this.advanceClock(nowMs);
    if (this.size >= this.maxFlows) {
      this.evictOne();
    } else if (this.freeHead < 0 && this.highWater === this.capacity) {
      this.grow(Math.min(this.capacity * 2, this.maxFlows));
    }
    let f = this.freeHead;
    if (f >= 0) this.freeHead = this.recI[(f << REC_SHIFT) + R_NEXT] as number;
    else f = this.highWater++;

    const rec = this.rec;
    const r = f << REC_SHIFT;
    const a = r + R_ADDR;
    const s = pkt.src;
    const d = pkt.dst;
    rec[a] = s[0] as number;
    rec[a + 1] = s[1] as number;
    rec[a + 2] = s[2] as number;
    rec[a + 3] = s[3] as number;
    rec[a + 4] = d[0] as number;
    rec[a + 5] = d[1] as number;
    rec[a + 6] = d[2] as number;
    rec[a + 7] = d[3] as number;
    rec[r + R_PORTS] = ((effectiveSrcPort(pkt) << 16) | effectiveDstPort(pkt)) >>> 0;
    const cls = pkt.protocol === IP_PROTO.TCP ? FLOW_CLASS.TCP : FLOW_CLASS.OTHER;
    rec[r + R_META] = keyMeta(pkt) | (cls << META_CLASS_SHIFT);
    rec[r + R_ENDPOINT_HI] = endpointHi;
    rec[r + R_ENDPOINT_LO] = endpointLo;
    rec[r + R_HASH] = h;
    const b = h & this.bucketMask;
    this.recI[r + R_CHAIN] = (this.buckets[b] as number) - 1;
    this.buckets[b] = f + 1;
    this.insertLruAfter(f, cls, this.listTail[cls] as number);

    const p = f << 1;
    this.flowId[f] = this.nextFlowId++;
    this.createdAt[f] = now;
    this.lastSeen[p] = now;
    this.lastSeen[p + 1] = now;
    this.packets[p] = 0;
    this.packets[p + 1] = 0;
    this.bytes[p] = 0;
    this.bytes[p + 1] = 0;
    this.flowCookie[f] = 0;
    this.gwlbPort[f] = 0;
    this.action[f] = ACTION.NONE;
    this.ruleId[f] = -1;
    this.tcpState[f] = 0;
    this.flags[f] = 0;
    this.headerRef[f] = -1;

    this.size++;
    this.creations++;
    this.created = true;
    this.direction = DIRECTION.TO_SERVER;
    return f;
  }

  // ---- per-flow fields -------------------------------------------------------------------------------------

  /** Counts one packet of `bytes` in `dir`. Separate from lookup so lookups that are not a forwarded packet
   * (find, ICMP-error matching) do not inflate counters. */
  countPacket(flow: number, dir: Direction, bytes: number): void {
    const i = (flow << 1) + dir;
    this.packets[i] = (this.packets[i] as number) + 1;
    this.bytes[i] = (this.bytes[i] as number) + bytes;
  }

  /** High 32 bits of the flow's GWLB endpoint id (part of its key; 0 when GWLB sent no endpoint option). */
  endpointIdHiOf(flow: number): number {
    return this.rec[(flow << REC_SHIFT) + R_ENDPOINT_HI] as number;
  }

  endpointIdLoOf(flow: number): number {
    return this.rec[(flow << REC_SHIFT) + R_ENDPOINT_LO] as number;
  }

  setCookie(flow: number, cookie: number): void {
    this.flowCookie[flow] = cookie;
  }

  getAction(flow: number): Action {
    return this.action[flow] as Action;
  }

  getRuleId(flow: number): number {
    return this.ruleId[flow] as number;
  }

  setVerdict(flow: number, action: Action, ruleId: number): void {
    this.action[flow] = action;
    this.ruleId[flow] = ruleId;
  }

  getTcpState(flow: number): number {
    return this.tcpState[flow] as number;
  }

  setTcpState(flow: number, state: number): void {
    this.tcpState[flow] = state;
  }

  /** Last packet in either direction, ms (whole ms of the table's clock, which started at its first nowMs). */
  lastSeenOf(flow: number): number {
    // The table's clock never goes back, so the later of the two directions is the flow's last packet.
    return this.baseMs + this.lastSeenRel(flow);
  }

  /** Last packet in `dir`, ms; the creation time while that direction has sent nothing. */
  lastSeenMsOf(flow: number, dir: Direction): number {
    return this.baseMs + (this.lastSeen[(flow << 1) + dir] as number);
  }

  /** When the flow was created, ms (flows older than ~12 days may read younger: see FLOW_TIME_REBASE_KEEP_MS). */
  createdMsOf(flow: number): number {
    return this.baseMs + (this.createdAt[flow] as number);
  }

  /** lastSeenOf relative to baseMs. */
  private lastSeenRel(flow: number): number {
    const p = flow << 1;
    const a = this.lastSeen[p] as number;
    const b = this.lastSeen[p + 1] as number;
    return a > b ? a : b;
  }

  protocolOf(flow: number): number {
    return (this.rec[(flow << REC_SHIFT) + R_META] as number) & META_PROTOCOL_MASK;
  }

  /** Port of the side that created the flow (0 for port-less protocols and later fragments). */
  initiatorPortOf(flow: number): number {
    return (this.rec[(flow << REC_SHIFT) + R_PORTS] as number) >>> 16;
  }

  responderPortOf(flow: number): number {
    return (this.rec[(flow << REC_SHIFT) + R_PORTS] as number) & 0xffff;
  }

  /** Writes the flow's key into `out` as the initiator sent it (for logs and originated packets). */
  keyInto(flow: number, out: InnerPacket): void {
    this.checkLive(flow, true);
    const a = (flow << REC_SHIFT) + R_ADDR;
    for (let i = 0; i < 4; i++) {
      out.src[i] = this.rec[a + i] as number;
      out.dst[i] = this.rec[a + 4 + i] as number;
    }
    // The version is part of the key: an IPv6 packet between IPv4-mapped addresses is not an IPv4 flow.
    out.ipVersion = ((this.rec[(flow << REC_SHIFT) + R_META] as number) & META_V6) !== 0 ? 6 : 4;
    out.protocol = this.protocolOf(flow);
    out.srcPort = this.initiatorPortOf(flow);
    out.dstPort = this.responderPortOf(flow);
  }

  isLive(flow: number): boolean {
    if (!(flow >= 0 && flow < this.highWater)) return false;
    const cls = this.classBits(flow);
    return cls !== FLOW_CLASS.FREE && cls !== FLOW_CLASS.REMOVING;
  }

  /** Idle-timeout class (FLOW_CLASS); FREE for an unused index. */
  classOf(flow: number): FlowClass {
    if (!(flow >= 0 && flow < this.highWater)) return FLOW_CLASS.FREE;
    return this.classBits(flow) as FlowClass;
  }

  private classBits(f: number): number {
    return (this.rec[(f << REC_SHIFT) + R_META] as number) >>> META_CLASS_SHIFT;
  }

  private setClass(f: number, cls: number): void {
    const i = (f << REC_SHIFT) + R_META;
    this.rec[i] = ((this.rec[i] as number) & META_KEY_MASK) | (cls << META_CLASS_SHIFT);
  }

  // ---- removal ---------------------------------------------------------------------------------------------

  /**
   * Moves a flow to the closed class (for TCP: both FINs or an RST seen): it now expires after closedIdleMs.
   * Idempotent. The flow keeps its place in last-seen order.
   */
  markClosed(flow: number): void {
    this.checkLive(flow);
    const cls = this.classBits(flow);
    if (cls === FLOW_CLASS.CLOSED) return;
    this.unlinkLru(flow, cls);
    this.setClass(flow, FLOW_CLASS.CLOSED);
    // Insert by last-seen so the list stays ordered even when the flow is closed from a timer, long after its
    // last packet; normally it is the newest and this is O(1).
    const seen = this.lastSeenRel(flow);
    let after = this.listTail[FLOW_CLASS.CLOSED] as number;
    while (after >= 0 && this.lastSeenRel(after) > seen) after = this.recI[(after << REC_SHIFT) + R_PREV] as number;
    this.insertLruAfter(flow, FLOW_CLASS.CLOSED, after);
  }

  isClosed(flow: number): boolean {
    return this.classOf(flow) === FLOW_CLASS.CLOSED;
  }

  /** Removes a live flow (onRemove runs). Returns false, doing nothing, for an index that is not live. */
  remove(flow: number): boolean {
    if (this.inCallback) throw new FlowTableError(FLOW_TABLE_ERROR.REENTRANT, 'onRemove must not remove flows');
    if (!this.isLive(flow)) return false;
    this.removals++;
    this.removeInternal(flow);
    return true;
  }

  /**
   * Removes flows idle longer than their class timeout (idle > timeout), oldest first, at most maxWork per
   * call; returns how many. Call it from a timer; when it returns maxWork there may be more to do.
   */
  expire(nowMs: number, maxWork: number): number {
    if (this.inCallback) throw new FlowTableError(FLOW_TABLE_ERROR.REENTRANT, 'onRemove must not expire flows');
    const now = this.advanceClock(nowMs);
    let done = 0;
    for (let i = 0; i < LIST_ORDER.length; i++) {
      const cls = LIST_ORDER[i] as number;
      const timeout = this.timeoutMs[cls] as number;
      while (done < maxWork) {
        const f = this.listHead[cls] as number;
        if (f < 0 || now - this.lastSeenRel(f) <= timeout) break;
        this.expirations++;
        done++;
        this.removeInternal(f);
      }
    }
    return done;
  }

  private evictOne(): void {
    let victim = -1;
    let oldest = Infinity;
    for (let i = 0; i < LIST_ORDER.length; i++) {
      const f = this.listHead[LIST_ORDER[i] as number] as number;
      if (f < 0) continue;
      const seen = this.lastSeenRel(f);
      if (seen < oldest) {
        oldest = seen;
        victim = f;
      }
    }
    this.evictions++;
    this.removeInternal(victim);
  }

  private removeInternal(f: number): void {
    const recI = this.recI;
    const r = f << REC_SHIFT;
    this.unlinkLru(f, this.classBits(f));
    const b = (this.rec[r + R_HASH] as number) & this.bucketMask;
    let prev = (this.buckets[b] as number) - 1;
    if (prev === f) {
      this.buckets[b] = (recI[r + R_CHAIN] as number) + 1;
    } else {
      while ((recI[(prev << REC_SHIFT) + R_CHAIN] as number) !== f) prev = recI[(prev << REC_SHIFT) + R_CHAIN] as number;
      recI[(prev << REC_SHIFT) + R_CHAIN] = recI[r + R_CHAIN] as number;
    }
    this.size--;
    // The flow is out of the index and the lists; its fields (header included) stay readable for onRemove and
    // the index returns to the free list even if the callback throws.
    this.setClass(f, FLOW_CLASS.REMOVING);
    const cb = this.onRemove;
    this.inCallback = true;
    try {
      if (cb !== undefined) cb(f);
    } finally {
      this.inCallback = false;
      this.releaseHeader(f);
      this.setClass(f, FLOW_CLASS.FREE);
      recI[r + R_NEXT] = this.freeHead;
      this.freeHead = f;
    }
  }

  // ---- GENEVE header ---------------------------------------------------------------------------------------

  /**
   * Keeps buf[off, off + len) as the flow's newest GENEVE header, with the outer addresses and port it came with
   * (docs/architecture.md §2: GWLB reuses a 5-tuple with a new flow cookie, so always refresh from the newest packet).
   * cookieAt: offset of the flow cookie option's 4 data bytes within the header (-1: none); those bytes become
   * flowCookie and the rest is interned in the header pool (header-pool.ts), once per distinct header.
   * Returns false when the header is new and the pool is full: the flow then has no header (headerLength 0)
   * and cannot originate packets until a header fits again.
   */
  storeHeader(flow: number, buf: Uint8Array, off: number, len: number, localAddr: number, gwlbAddr: number, gwlbPort: number, cookieAt = -1): boolean {
    this.checkLive(flow);
    if (!(len >= 0 && len <= GENEVE_MAX_HEADER_BYTES && off >= 0 && off + len <= buf.length && cookieAt >= -1 && cookieAt + 4 <= len)) {
      throw new FlowTableError(FLOW_TABLE_ERROR.RANGE, `header [${off}, +${len}) (cookie at ${cookieAt}) outside buffer or over ${GENEVE_MAX_HEADER_BYTES} bytes`);
    }
    this.gwlbPort[flow] = gwlbPort;
    const pool = this.headers;
    const t = this.headerRef[flow] as number;
    if (!(t >= 0 && pool.matches(t, buf, off, len, cookieAt, localAddr, gwlbAddr))) {
      // Release first: a flow that was the last user of its template frees room for its new header.
      if (t >= 0) pool.release(t);
      const n = pool.acquire(buf, off, len, cookieAt, localAddr, gwlbAddr);
      this.headerRef[flow] = n;
      if (n < 0) {
        this.headerOverflows++;
        return false;
      }
    }
    if (cookieAt >= 0) {
      const c = off + cookieAt;
      this.flowCookie[flow] = (((buf[c] as number) << 24) | ((buf[c + 1] as number) << 16) | ((buf[c + 2] as number) << 8) | (buf[c + 3] as number)) >>> 0;
    }
    return true;
  }

  /** Length of the flow's stored header, 0 when none. */
  headerLength(flow: number): number {
    const t = this.headerRef[flow] as number;
    return t < 0 ? 0 : this.headers.lengthOf(t);
  }

  /** Copies the flow's newest header to target[targetOff ...]; returns the bytes written (0 when none). */
  copyHeader(flow: number, target: Uint8Array, targetOff: number): number {
    const t = this.headerRef[flow] as number;
    const len = t < 0 ? 0 : this.headers.lengthOf(t);
    if (!(targetOff >= 0 && targetOff + len <= target.length)) {
      throw new FlowTableError(FLOW_TABLE_ERROR.RANGE, `header of ${len} bytes does not fit at ${targetOff}`);
    }
    if (t < 0) return 0;
    return this.headers.copy(t, this.flowCookie[flow] as number, target, targetOff);
  }

  /** Our address the newest header was sent to (0 when the flow has no header). */
  localAddrOf(flow: number): number {
    const t = this.headerRef[flow] as number;
    return t < 0 ? 0 : this.headers.localAddrOf(t);
  }

  /** The GWLB address the newest header came from (0 when the flow has no header). */
  gwlbAddrOf(flow: number): number {
    const t = this.headerRef[flow] as number;
    return t < 0 ? 0 : this.headers.gwlbAddrOf(t);
  }

  gwlbPortOf(flow: number): number {
    return this.gwlbPort[flow] as number;
  }

  /** Distinct headers kept (header-pool.ts templates in use). */
  get headerTemplates(): number {
    return this.headers.size;
  }

  private releaseHeader(f: number): void {
    const t = this.headerRef[f] as number;
    if (t < 0) return;
    this.headerRef[f] = -1;
    this.headers.release(t);
  }

  // ---- storage -----------------------------------------------------------------------------------------------

  /** Copies every field into a new, larger generation and re-indexes (O(size); rare: log2(maxFlows) times). */
  private grow(cap: number): void {
    const next = allocateStorage(cap, bucketCountFor(cap));
    next.rec.set(this.rec);
    next.flowId.set(this.flowId);
    next.bytes.set(this.bytes);
    next.createdAt.set(this.createdAt);
    next.lastSeen.set(this.lastSeen);
    next.packets.set(this.packets);
    next.flowCookie.set(this.flowCookie);
    next.ruleId.set(this.ruleId);
    next.headerRef.set(this.headerRef);
    next.gwlbPort.set(this.gwlbPort);
    next.action.set(this.action);
    next.tcpState.set(this.tcpState);
    next.flags.set(this.flags);
    this.adopt(next);
    this.capacity = cap;
    const buckets = this.buckets;
    const mask = this.bucketMask;
    const rec = this.rec;
    const recI = this.recI;
    for (let f = 0; f < this.highWater; f++) {
      const r = f << REC_SHIFT;
      const cls = (rec[r + R_META] as number) >>> META_CLASS_SHIFT;
      if (cls === FLOW_CLASS.FREE || cls === FLOW_CLASS.REMOVING) continue;
      const b = (rec[r + R_HASH] as number) & mask;
      recI[r + R_CHAIN] = (buckets[b] as number) - 1;
      buckets[b] = f + 1;
    }
  }

  // ---- LRU lists -------------------------------------------------------------------------------------------

  /** Links f into list cls right after `after` (-1: at the head). */
  private insertLruAfter(f: number, cls: number, after: number): void {
    const recI = this.recI;
    const next = after < 0 ? (this.listHead[cls] as number) : (recI[(after << REC_SHIFT) + R_NEXT] as number);
    const r = f << REC_SHIFT;
    recI[r + R_PREV] = after;
    recI[r + R_NEXT] = next;
    if (after < 0) this.listHead[cls] = f;
    else recI[(after << REC_SHIFT) + R_NEXT] = f;
    if (next < 0) this.listTail[cls] = f;
    else recI[(next << REC_SHIFT) + R_PREV] = f;
  }

  private unlinkLru(f: number, cls: number): void {
    const recI = this.recI;
    const r = f << REC_SHIFT;
    const prev = recI[r + R_PREV] as number;
    const next = recI[r + R_NEXT] as number;
    if (prev < 0) this.listHead[cls] = next;
    else recI[(prev << REC_SHIFT) + R_NEXT] = next;
    if (next < 0) this.listTail[cls] = prev;
    else recI[(next << REC_SHIFT) + R_PREV] = prev;
  }

  /** Throws unless `flow` is live (or, with duringRemove, inside its own onRemove callback). */
  private checkLive(flow: number, duringRemove = false): void {
    if (this.isLive(flow)) return;
    if (!(duringRemove && flow >= 0 && flow < this.highWater && this.classBits(flow) === FLOW_CLASS.REMOVING)) {
      throw new FlowTableError(FLOW_TABLE_ERROR.BAD_FLOW, `flow ${flow} is not live`);
    }
  }
}
