/**
 * The content inspector of one worker (docs/architecture.md §3.2): for each TCP flow a content stage wants, both
 * directions reassembled (src/stream/tcp-stream.ts), cut into HTTP/1.x objects or opaque objects
 * (src/stream/http1.ts), fed to the content stages in chain order; and the hold/release of the flow's packets by
 * the stages' cleared offsets (src/pipeline/content-holds.ts).
 *
 *   packet (passed by the packet stages)
 *     ─> TcpStream.packet ─> in-order bytes ─> Http1Session ─> stage.onObjectStart / onBody / onObjectEnd
 *     ─> the packet's stream range [start, end) in its direction
 *     ─> end ≤ cleared(dir) and nothing of its direction waits?  release : hold (copy, FIFO)
 *     ─> held packets of both directions whose end ≤ cleared(dir) go out, in arrival order
 *
 *   cleared(dir) = min(delivered(dir), min over the flow's blocking stages of their cleared offset for dir)
 *
 * Packets without bytes (pure ACKs, window updates, SYNs) never wait and never release anything: a server's ACK
 * cannot let held client bytes out. Packets of flows no content stage wants cost one byte lookup.
 */
import { IP_PROTO, TCP_FLAG, type InnerPacket } from '../packet/types.js';
import { formatIp } from '../packet/address.js';
import { formatEndpointId } from '../geneve/codec.js';
import type { GeneveHeader } from '../geneve/types.js';
import { TcpStream } from '../stream/tcp-stream.js';
import { StreamMemcap } from '../stream/memcap.js';
import { STREAM_END, type StreamAnomaly, type StreamConsumer, type StreamEndReason } from '../stream/events.js';
import { DIRECTION_STATE } from '../stream/reassembler.js';
import { SEGMENT_RESULT } from '../stream/events.js';
import { streamOptions, type StreamOptions } from '../stream/options.js';
import { readWindowScale } from '../stream/tcp-options.js';
import { Http1Session, type HttpAnomaly, type HttpConsumer, type HttpEndReason, type HttpHead, type HttpObjectKind, type HttpOptions } from '../stream/http1.js';
import { ACTION, ACTION_NAMES, type Action } from '../pipeline/stage.js';
import { CLEARED_ALL, contentFlowFields, type ContentFlowMeta, type ContentFlowView, type ContentLog, type ContentStage, type Provenance } from '../pipeline/content.js';
import { DirectionQueue, holdCopy, refundHeld, type ContentHeldPacket } from '../pipeline/content-holds.js';
import type { HoldStore } from '../pipeline/hold.js';
import { CONTENT_COUNTER } from './counters.js';

/** What the engine does with the packet it handed in. */
export const CONTENT_RESULT = {
  /** Send it now (from its receive slot). */
  RELEASE: 0,
  /** Copied into the flow's queue: nothing to send now. */
  HELD: 1,
  DROP: 2,
  /** Drop it and reset both ends (the engine builds the RSTs from this packet). */
  REJECT: 3,
} as const;
export type ContentResult = (typeof CONTENT_RESULT)[keyof typeof CONTENT_RESULT];

/** Exception policies of content inspection (policy `settings.stream`, docs/policy.md). */
export interface ContentPolicy {
  /** A hole outlived the reassembly wait: skip it (bytes after it pass uninspected) or end the flow. */
  readonly onHoleTimeout: 'skip' | 'drop_flow' | 'reject_flow';
  /** An IP-fragmented TCP segment of an inspected flow (its bytes cannot be placed in the stream): drop or pass. */
  readonly onFragment: 'drop' | 'pass';
  /** The hold memcap or the inspected-flow limit refused a packet: drop it, or pass it uninspected. */
  readonly onMemcap: 'drop' | 'pass';
  /**
   * A segment with data and URG set: a receiver without SO_OOBINLINE takes the urgent byte out of the stream, so
   * the bytes the application reads differ from the bytes inspected (RFC 6093). Drop, or pass (inspected inline).
   */
  readonly onUrgent: 'drop' | 'pass';
  /**
   * How long an incomplete HTTP head may keep its packets waiting, ms: then its bytes are inspected as an opaque
   * object (a protocol that only looks like HTTP, a stalled client) and released per the stages.
   */
  readonly headWaitMs: number;
  /** Reassembly bounds for flows that start from now on (their onHole is 'skip': on_hole_timeout decides). */
  readonly stream: StreamOptions;
}

/** How the inspector reaches the engine. */
export interface ContentOutput {
  /** Queue a held packet for sending (the engine's tx list). */
  send(p: ContentHeldPacket): void;
  /** About to queue held packets during a batch: send what the batch already released first (order). */
  beforeRelease(): void;
  /** Send what was queued (after an answer that came outside a batch). */
  flush(): void;
  /** Reset both ends of `flow`, building the RSTs from the GENEVE datagram `data` (a held packet of the flow). */
  reject(flow: number, data: Buffer): void;
  /** Record the flow's verdict in the flow table (later packets meet it in the packet stages). */
  setVerdict(flow: number, action: Action): void;
}

export interface ScopeInfo {
  readonly index: number;
  readonly name: string;
}

export interface InspectorOptions {
  readonly maxFlows: number;
  readonly http: HttpOptions;
  readonly memcap: StreamMemcap;
  readonly holds: HoldStore;
  /** The content block of the worker's counters (CONTENT_COUNTER), and the stream and HTTP blocks. */
  readonly counters: Float64Array;
  readonly streamCounters: Float64Array;
  readonly httpCounters: Float64Array;
  readonly out: ContentOutput;
  readonly log: ContentLog;
}

/** Log stage names of content stages (log schema STAGES). */
const LOG_STAGE: Record<string, 'av' | 'dlp' | 'stream' | 'test'> = { antivirus: 'av', dlp: 'dlp', stream: 'stream', test_match: 'test' };

export const DEFAULT_CONTENT_POLICY: ContentPolicy = Object.freeze({ onHoleTimeout: 'reject_flow', onFragment: 'drop', onMemcap: 'drop', onUrgent: 'drop', headWaitMs: 1000, stream: streamOptions({ onHole: 'skip' }) });

const DEFAULT_SCOPE: ScopeInfo = Object.freeze({ index: 0, name: 'default' });

const NOT_SEEN = 0;
const INSPECTED = 1;
const NOT_INSPECTED = 2;

/** Per-flow inspection state: the view the stages see, the streams, the cleared offsets, the two queues. */
class ContentFlow implements ContentFlowView, HttpConsumer {
  readonly meta: ContentFlowMeta;
  readonly flow: number;
  closed = false;
  decided = false;
  action: Action = ACTION.NONE;
  chunkStart = 0;
  chunkEnd = 0;
  readonly stages: ContentStage[];
  /** Stage i no longer follows the flow (it passed or alerted it). */
  readonly done: Uint8Array;
  /** cleared[2 * i + dir] for stage i. */
  readonly cleared: Float64Array;
  readonly tcp: TcpStream;
  readonly http: Http1Session;
  readonly queues: readonly [DirectionQueue, DirectionQueue] = [new DirectionQueue(), new DirectionQueue()];
  /** How each direction's stream ended (−1: open) and where. */
  readonly ended = [-1, -1];
  /** Since when (monotonic ms) each direction's incomplete HTTP head keeps bytes uninspected; −1: none. */
  readonly headSince = [-1, -1];
  /** The RSTs of a REJECT went out. */
  resetSent = false;
  /** The stages were told the flow ended and the streams were freed. */
  closedStages = false;
  readonly inspector: ContentInspector;

  constructor(inspector: ContentInspector, flow: number, meta: ContentFlowMeta, stages: ContentStage[], o: InspectorOptions, stream: StreamOptions) {
    this.inspector = inspector;
    this.flow = flow;
    this.meta = meta;
    this.stages = stages;
    this.done = new Uint8Array(stages.length);
    this.cleared = new Float64Array(stages.length * 2).fill(CLEARED_ALL);
    this.http = new Http1Session(this, o.http, o.httpCounters);
    this.tcp = new TcpStream(stream, o.memcap, o.streamCounters, [new DirectionFeed(this, 0, this.http.request), new DirectionFeed(this, 1, this.http.response)]);
  }

  // ---- ContentFlowView --------------------------------------------------------------------------------------

  delivered(dir: number): number {
    return (dir === 0 ? this.tcp.dirs[0] : this.tcp.dirs[1]).delivered;
  }

  setCleared(stage: ContentStage, dir: number, offset: number): void {
    if (this.closed || this.decided) return;
    const i = this.stages.indexOf(stage);
    if (i < 0 || !stage.blocking || (dir !== 0 && dir !== 1)) return;
    this.cleared[2 * i + dir] = offset;
    this.inspector.changed(this);
  }

  decide(stage: ContentStage, action: Action, why: Provenance): void {
    if (this.closed || this.decided) return;
    const i = this.stages.indexOf(stage);
    if (i < 0) return;
    this.inspector.decided(this, i, action, why);
  }

  // ---- HttpConsumer: objects to every stage still following the flow ---------------------------------------

  onObjectStart(dir: number, kind: HttpObjectKind, head: HttpHead | null): void {
    const st = this.stages;
    for (let i = 0; i < st.length && !this.decided; i++) if (this.done[i] === 0) (st[i] as ContentStage).onObjectStart(this, dir, kind, head);
  }

  onBody(dir: number, data: Uint8Array): void {
    const st = this.stages;
    for (let i = 0; i < st.length && !this.decided; i++) if (this.done[i] === 0) (st[i] as ContentStage).onBody(this, dir, data);
  }

  onObjectEnd(dir: number, reason: HttpEndReason): void {
    const st = this.stages;
    for (let i = 0; i < st.length && !this.decided; i++) if (this.done[i] === 0) (st[i] as ContentStage).onObjectEnd(this, dir, reason);
  }

  onAnomaly(dir: number, code: HttpAnomaly): void {
    const st = this.stages;
    for (let i = 0; i < st.length && !this.decided; i++) if (this.done[i] === 0) (st[i] as ContentStage).onAnomaly?.(this, dir, code);
  }

  /** Bytes of `dir` the stages have seen: delivered in order, less an incomplete HTTP head still buffered. */
  inspected(dir: number): number {
    return this.delivered(dir) - (dir === 0 ? this.http.request : this.http.response).pendingHeadBytes;
  }

  /** Offset up to which every blocking stage lets bytes of `dir` go, bounded by what they have seen. */
  clearedOf(dir: number): number {
    let c = CLEARED_ALL;
    const n = this.stages.length;
    for (let i = 0; i < n; i++) {
      const v = this.cleared[2 * i + dir]!;
      if (v < c) c = v;
    }
    const seen = this.inspected(dir);
    const end = this.ended[dir]!;
    // After a FIN, or past the inspection depth, nothing more will be inspected: bytes past it are not waited for.
    if ((end === STREAM_END.FIN || end === STREAM_END.DEPTH) && seen === this.delivered(dir)) return c;
    return seen < c ? seen : c;
  }
}

/** Feeds one direction's in-order bytes to its HTTP side, recording where in the stream they are. */
class DirectionFeed implements StreamConsumer {
  constructor(
    private readonly cf: ContentFlow,
    private readonly dir: number,
    private readonly next: StreamConsumer,
  ) {}

  onData(data: Uint8Array, offset: number): void {
    const cf = this.cf;
    if (cf.decided) return;
    cf.chunkStart = offset;
    cf.chunkEnd = offset + data.length;
    this.next.onData(data, offset);
  }

  onGap(offset: number, length: number): void {
    const cf = this.cf;
    if (cf.decided) return;
    cf.chunkStart = offset;
    cf.chunkEnd = offset + length;
    this.next.onGap(offset, length);
    cf.inspector.gap(cf, this.dir);
  }

  onEnd(offset: number, reason: StreamEndReason): void {
    const cf = this.cf;
    cf.ended[this.dir] = reason;
    if (cf.decided) return;
    cf.chunkStart = offset;
    cf.chunkEnd = offset;
    this.next.onEnd(offset, reason);
  }

  onAnomaly(code: StreamAnomaly, offset: number): void {
    this.next.onAnomaly(code, offset);
  }
}

export class ContentInspector {
  private stages: ContentStage[] = [];
  private readonly o: InspectorOptions;
  private readonly c: Float64Array;
  private readonly byFlow = new Map<number, ContentFlow>();
  /** NOT_SEEN / INSPECTED / NOT_INSPECTED per flow index (grown on demand, reset when the flow ends). */
  private state = new Uint8Array(1024);
  /** Flows with packets waiting: the timer checks their budgets and hole timers. */
  private readonly waiting = new Set<ContentFlow>();
  private policy: ContentPolicy = DEFAULT_CONTENT_POLICY;
  private scopeOf: (gh: GeneveHeader) => ScopeInfo = () => DEFAULT_SCOPE;
  /** Inside onPacket: releases wait until the packet's own processing is done. */
  private inPacket: ContentFlow | null = null;

  constructor(opts: InspectorOptions) {
    this.o = opts;
    this.c = opts.counters;
  }

  /**
   * True when some content stage is enabled, or flows started under an earlier policy are still inspected (a
   * reload that turned content inspection off lets them finish with their stages): only then does the engine
   * hand packets in.
   */
  get active(): boolean {
    return this.stages.length > 0 || this.byFlow.size > 0;
  }

  get flowCount(): number {
    return this.byFlow.size;
  }

  /** The chain's content stages, in order, and the exception policies (policy load or reload). Flows under inspection keep their stages. */
  configure(stages: ContentStage[], policy: ContentPolicy, scopeOf: (gh: GeneveHeader) => ScopeInfo): void {
    this.stages = stages;
    this.policy = policy;
    this.scopeOf = scopeOf;
  }

  /**
   * A packet the packet stages passed. `flow` is its flow index, `dir` 0 from the initiator. The engine calls
   * this only for TCP packets with a transport header and not fragmented (see fragment()).
   */
  onPacket(
    flow: number,
    dir: number,
    pkt: InnerPacket,
    gh: GeneveHeader,
    buf: Buffer,
    off: number,
    len: number,
    localAddr: number,
    gwlbAddr: number,
    gwlbPort: number,
    nowMs: number,
  ): ContentResult {
    const st = flow < this.state.length ? this.state[flow]! : NOT_SEEN;
    if (st === NOT_INSPECTED) return CONTENT_RESULT.RELEASE;
    let cf: ContentFlow | undefined;
    if (st === NOT_SEEN) {
      const r = this.start(flow, pkt, gh, dir);
      if (r !== CONTENT_RESULT.HELD) return r;
      cf = this.byFlow.get(flow) as ContentFlow;
    } else {
      cf = this.byFlow.get(flow);
      if (cf === undefined) return CONTENT_RESULT.RELEASE;
    }
    if (cf.decided) return this.afterDecision(cf);

    const c = this.c;
    const flags = pkt.tcpFlags;
    const me = dir === 0 ? cf.tcp.dirs[0] : cf.tcp.dirs[1];
    const plen = pkt.payloadLength;
    // Bytes after an accepted RST: the receiver tore the connection down, so they can only be an attempt to
    // slip bytes past an inspection that has ended (docs/architecture.md §3.2).
    if (plen > 0 && cf.ended[dir] === STREAM_END.RST) {
      c[CONTENT_COUNTER.AFTER_RESET_DROPPED]!++;
      return CONTENT_RESULT.DROP;
    }
    if (plen > 0 && (flags & TCP_FLAG.URG) !== 0 && this.policy.onUrgent === 'drop') {
      c[CONTENT_COUNTER.URGENT_DROPPED]!++;
      return CONTENT_RESULT.DROP;
    }
    const wscale = (flags & TCP_FLAG.SYN) !== 0 ? readWindowScale(buf, pkt.l4Offset + 20, pkt.payloadOffset - pkt.l4Offset - 20) : -1;
    this.inPacket = cf;
    let seg: number;
    try {
      seg = cf.tcp.packet(dir, flags, pkt.tcpSeq, pkt.tcpAck, pkt.tcpWindow, wscale, buf, pkt.payloadOffset, plen, nowMs);
    } finally {
      this.inPacket = null;
    }
    if (cf.decided) return this.afterDecision(cf);
    if (seg === SEGMENT_RESULT.DROP) {
      c[CONTENT_COUNTER.SEGMENTS_DROPPED]!++;
      this.releaseBoth(cf);
      return CONTENT_RESULT.DROP;
    }
    if ((flags & TCP_FLAG.RST) !== 0 && cf.ended[dir] === STREAM_END.RST) {
      // Both directions are over: what still waits will not be wanted by anyone.
      this.discard(cf);
    }
    this.heads(cf, nowMs);
    if (cf.decided) return this.afterDecision(cf);
    this.releaseBoth(cf);
    if (cf.decided) return this.afterDecision(cf);

    if (plen === 0 && (flags & TCP_FLAG.FIN) === 0) return CONTENT_RESULT.RELEASE;
    if (me.state === DIRECTION_STATE.NEW) return CONTENT_RESULT.RELEASE;
    const dataSeq = (flags & TCP_FLAG.SYN) !== 0 ? (pkt.tcpSeq + 1) >>> 0 : pkt.tcpSeq;
    const end = me.offsetOf(dataSeq) + plen;
    const q = cf.queues[dir] as DirectionQueue;
    if (q.length === 0 && end <= cf.clearedOf(dir)) return CONTENT_RESULT.RELEASE;

    if (!holdCopy(this.o.holds, q, buf, off, len, end, plen, localAddr, gwlbAddr, gwlbPort, nowMs)) {
      if (this.policy.onMemcap === 'drop') {
        c[CONTENT_COUNTER.MEMCAP_DROPPED]!++;
        return CONTENT_RESULT.DROP;
      }
      c[CONTENT_COUNTER.MEMCAP_PASSED]!++;
      return CONTENT_RESULT.RELEASE;
    }
    c[CONTENT_COUNTER.HELD]!++;
    this.waiting.add(cf);
    this.checkBudgets(cf, dir, nowMs, false);
    if (cf.decided) return this.afterDecision(cf);
    return CONTENT_RESULT.HELD;
  }

  /**
   * A first IP fragment of a TCP segment: its bytes cannot be placed in an inspected stream. A flow first seen
   * through a fragment is asked for like any other (a flow whose every packet is fragmented must not go uninspected).
   */
  fragment(flow: number, dir: number, pkt: InnerPacket, gh: GeneveHeader): ContentResult {
    const st = flow < this.state.length ? this.state[flow]! : NOT_SEEN;
    if (st === NOT_INSPECTED) return CONTENT_RESULT.RELEASE;
    if (st === NOT_SEEN) {
      const r = this.start(flow, pkt, gh, dir);
      if (r !== CONTENT_RESULT.HELD) return r;
    }
    const cf = this.byFlow.get(flow);
    if (cf === undefined) return CONTENT_RESULT.RELEASE;
    if (cf.decided) return CONTENT_RESULT.DROP;
    if (this.policy.onFragment === 'drop') {
      this.c[CONTENT_COUNTER.FRAGMENTS_DROPPED]!++;
      return CONTENT_RESULT.DROP;
    }
    this.c[CONTENT_COUNTER.FRAGMENTS_PASSED]!++;
    return CONTENT_RESULT.RELEASE;
  }

  /** The flow left the table: forget it, discard what it held, tell its stages. */
  flowEnd(flow: number): void {
    if (flow < this.state.length) this.state[flow] = NOT_SEEN;
    const cf = this.byFlow.get(flow);
    if (cf === undefined) return;
    this.byFlow.delete(flow);
    this.discard(cf);
    this.close(cf);
  }

  /** Timer: hole timers and hold budgets of the flows with packets waiting. */
  tick(nowMs: number): void {
    for (const cf of this.waiting) {
      if (cf.closed || cf.decided) {
        this.waiting.delete(cf);
        continue;
      }
      this.inPacket = cf;
      try {
        cf.tcp.poll(nowMs);
        this.heads(cf, nowMs);
      } finally {
        this.inPacket = null;
      }
      for (let dir = 0; dir < 2 && !cf.decided; dir++) this.checkBudgets(cf, dir, nowMs, true);
      if (cf.decided) this.finishDecision(cf);
      else this.releaseBoth(cf);
    }
    this.c[CONTENT_COUNTER.FLOWS_ACTIVE] = this.byFlow.size;
    this.c[CONTENT_COUNTER.STREAM_MEMCAP_BYTES] = this.o.memcap.usedBytes;
  }

  // ---- from the flows -------------------------------------------------------------------------------------

  /** A stage moved a cleared offset: outside a packet, release now (an async answer). */
  changed(cf: ContentFlow): void {
    if (this.inPacket === cf) return;
    if (this.releaseBoth(cf) > 0) this.o.out.flush();
  }

  /** Stage i decided the flow. */
  decided(cf: ContentFlow, i: number, action: Action, why: Provenance): void {
    const stage = cf.stages[i] as ContentStage;
    let a = action;
    if ((a === ACTION.DROP || a === ACTION.REJECT) && !stage.blocking) a = ACTION.ALERT;
    this.logVerdict(cf, stage.name, a, why);
    if (a === ACTION.PASS || a === ACTION.ALERT) {
      cf.done[i] = 1;
      cf.cleared[2 * i] = CLEARED_ALL;
      cf.cleared[2 * i + 1] = CLEARED_ALL;
      this.c[a === ACTION.PASS ? CONTENT_COUNTER.VERDICT_PASS : CONTENT_COUNTER.VERDICT_ALERT]!++;
      this.changed(cf);
      return;
    }
    this.decideFlow(cf, a);
  }

  /** A hole outlived its wait in `dir` (the stream skipped it): the policy's on_hole_timeout. */
  gap(cf: ContentFlow, dir: number): void {
    this.c[CONTENT_COUNTER.HOLE_TIMEOUTS]!++;
    const p = this.policy.onHoleTimeout;
    if (p === 'skip') return;
    const action = p === 'reject_flow' ? ACTION.REJECT : ACTION.DROP;
    this.logVerdict(cf, 'stream', action, { reason: 'stream.hole_timeout', rule: null, dir, detail: `direction ${dir}: a hole in the stream outlived the reassembly wait` });
    this.decideFlow(cf, action);
  }

  // ---- internals ------------------------------------------------------------------------------------------

  /**
   * Incomplete HTTP heads keep their bytes from the stages (and so their packets waiting): give up on one that
   * waited headWaitMs, or at once when the other direction showed the connection is not HTTP (a server that spoke
   * first with a banner): its bytes go to the stages as an opaque object.
   */
  private heads(cf: ContentFlow, nowMs: number): void {
    const http = cf.http;
    for (let dir = 0; dir < 2 && !cf.decided; dir++) {
      const side = dir === 0 ? http.request : http.response;
      if (side.pendingHeadBytes === 0) {
        cf.headSince[dir] = -1;
        continue;
      }
      const other = dir === 0 ? http.response : http.request;
      const since = cf.headSince[dir]!;
      if (since < 0 && !other.notHttp) {
        cf.headSince[dir] = nowMs;
        continue;
      }
      if (other.notHttp || nowMs - since >= this.policy.headWaitMs) {
        cf.headSince[dir] = -1;
        this.c[CONTENT_COUNTER.HEADS_ABANDONED]!++;
        side.abandonHead();
      }
    }
  }

  private start(flow: number, pkt: InnerPacket, gh: GeneveHeader, dir: number): ContentResult {
    if (flow >= this.state.length) {
      let n = this.state.length;
      while (n <= flow) n *= 2;
      const s = new Uint8Array(n);
      s.set(this.state);
      this.state = s;
    }
    const meta = this.metaOf(flow, pkt, gh, this.scopeOf(gh), dir);
    const stages = this.stages.filter((s) => s.wants(meta));
    if (stages.length === 0) {
      this.state[flow] = NOT_INSPECTED;
      this.c[CONTENT_COUNTER.FLOWS_NOT_WANTED]!++;
      return CONTENT_RESULT.RELEASE;
    }
    if (this.byFlow.size >= this.o.maxFlows) {
      if (this.policy.onMemcap === 'drop') {
        // Not marked: the flow is tried again with its next packet (a SYN retransmission may find room).
        this.c[CONTENT_COUNTER.FLOW_LIMIT_DROPPED]!++;
        return CONTENT_RESULT.DROP;
      }
      this.state[flow] = NOT_INSPECTED;
      this.c[CONTENT_COUNTER.FLOW_LIMIT_PASSED]!++;
      return CONTENT_RESULT.RELEASE;
    }
    this.byFlow.set(flow, new ContentFlow(this, flow, meta, stages, this.o, this.policy.stream));
    this.state[flow] = INSPECTED;
    this.c[CONTENT_COUNTER.FLOWS_STARTED]!++;
    return CONTENT_RESULT.HELD;
  }

  private metaOf(flow: number, pkt: InnerPacket, gh: GeneveHeader, scope: ScopeInfo, dir: number): ContentFlowMeta {
    // The initiator is the sender of direction 0.
    const fromInit = dir === 0;
    const syn = (pkt.tcpFlags & (TCP_FLAG.SYN | TCP_FLAG.ACK)) === TCP_FLAG.SYN;
    return {
      flowId: String(flow),
      ipVersion: pkt.ipVersion === 6 ? 6 : 4,
      client: formatIp(fromInit ? pkt.src : pkt.dst),
      clientPort: fromInit ? pkt.srcPort : pkt.dstPort,
      server: formatIp(fromInit ? pkt.dst : pkt.src),
      serverPort: fromInit ? pkt.dstPort : pkt.srcPort,
      endpointId: gh.hasEndpointId ? formatEndpointId(gh.endpointIdHi, gh.endpointIdLo) : null,
      attachmentId: gh.hasAttachmentId ? `${gh.attachmentIdHi.toString(16).padStart(8, '0')}${gh.attachmentIdLo.toString(16).padStart(8, '0')}` : null,
      scope: scope.index,
      scopeName: scope.name,
      midstream: !syn,
    };
  }

  /** Releases the held packets of both directions that every stage has cleared; returns how many. */
  private releaseBoth(cf: ContentFlow): number {
    if (cf.decided || cf.closed) return 0;
    const n = this.release(cf, 0) + this.release(cf, 1);
    if (cf.queues[0].length === 0 && cf.queues[1].length === 0) this.waiting.delete(cf);
    return n;
  }

  private release(cf: ContentFlow, dir: number): number {
    const q = cf.queues[dir] as DirectionQueue;
    if (q.length === 0) return 0;
    const cleared = cf.clearedOf(dir);
    let n = 0;
    const out = this.o.out;
    const store = this.o.holds;
    for (let p = q.first(); p !== undefined && p.end <= cleared; p = q.first()) {
      if (n === 0) out.beforeRelease();
      q.shift();
      refundHeld(store, p);
      out.send(p);
      n++;
    }
    this.c[CONTENT_COUNTER.RELEASED]! += n;
    return n;
  }

  private checkBudgets(cf: ContentFlow, dir: number, nowMs: number, timer: boolean): void {
    const q = cf.queues[dir] as DirectionQueue;
    const first = q.first();
    if (first === undefined) return;
    const st = cf.stages;
    for (let i = 0; i < st.length && !cf.decided; i++) {
      const s = st[i] as ContentStage;
      if (cf.cleared[2 * i + dir]! >= first.end) continue;
      let budget: 'bytes' | 'ms' | null = null;
      if (q.payloadBytes > s.holdBudgetBytes) budget = 'bytes';
      else if (timer && nowMs - first.sinceMs >= s.holdBudgetMs) budget = 'ms';
      if (budget === null) continue;
      this.c[budget === 'bytes' ? CONTENT_COUNTER.BUDGET_BYTES : CONTENT_COUNTER.BUDGET_MS]!++;
      const a = s.onHoldExceeded(cf, dir, budget);
      if (a === ACTION.PASS || a === ACTION.ALERT) {
        cf.cleared[2 * i + dir] = CLEARED_ALL;
        if (a === ACTION.ALERT) this.logVerdict(cf, s.name, ACTION.ALERT, { reason: `${LOG_STAGE[s.name] ?? s.name}.hold_budget`, rule: null, dir, detail: `hold budget (${budget}) ran out; the stage's fail mode passed the bytes` });
      } else {
        this.logVerdict(cf, s.name, a, { reason: `${LOG_STAGE[s.name] ?? s.name}.hold_budget`, rule: null, dir, detail: `hold budget (${budget}) ran out; the stage's fail mode blocked the flow` });
        this.decideFlow(cf, a === ACTION.REJECT ? ACTION.REJECT : ACTION.DROP);
      }
    }
  }

  /** The flow is denied: nothing of it goes out any more. */
  private decideFlow(cf: ContentFlow, action: Action): void {
    if (cf.decided) return;
    cf.decided = true;
    cf.action = action;
    this.c[action === ACTION.REJECT ? CONTENT_COUNTER.VERDICT_REJECT : CONTENT_COUNTER.VERDICT_DROP]!++;
    this.o.out.setVerdict(cf.flow, action);
    // Inside a packet the engine answers that packet (and builds the RSTs from it); otherwise finish now.
    if (this.inPacket !== cf) this.finishDecision(cf);
  }

  /** After a decision outside a packet: reset both ends from a held packet, discard the rest, free the streams. */
  private finishDecision(cf: ContentFlow): void {
    if (cf.action === ACTION.REJECT) {
      // Without a held packet to build them from, the flow's next packet brings the RSTs (afterDecision).
      const held = cf.queues[0].first() ?? cf.queues[1].first();
      if (held !== undefined) {
        cf.resetSent = true;
        this.o.out.reject(cf.flow, held.data);
        this.o.out.flush();
      }
    }
    this.discard(cf);
    this.endStages(cf);
  }

  /** A packet of a decided flow: the first one after a reject decided inside a packet carries the RSTs. */
  private afterDecision(cf: ContentFlow): ContentResult {
    this.discard(cf);
    this.endStages(cf);
    if (cf.action === ACTION.REJECT && !cf.resetSent) {
      cf.resetSent = true;
      return CONTENT_RESULT.REJECT;
    }
    return CONTENT_RESULT.DROP;
  }

  private discard(cf: ContentFlow): void {
    const store = this.o.holds;
    let n = 0;
    for (const q of cf.queues) {
      for (let p = q.first(); p !== undefined; p = q.first()) {
        q.shift();
        refundHeld(store, p);
        n++;
      }
    }
    this.c[CONTENT_COUNTER.DISCARDED]! += n;
    this.waiting.delete(cf);
  }

  /** The stages are done with a decided flow: tell them once and free the streams. */
  private endStages(cf: ContentFlow): void {
    if (cf.closedStages) return;
    cf.closedStages = true;
    for (const s of cf.stages) s.onFlowEnd(cf);
    cf.tcp.close();
    cf.http.close();
  }

  private close(cf: ContentFlow): void {
    cf.closed = true;
    if (!cf.closedStages) {
      cf.closedStages = true;
      for (const s of cf.stages) s.onFlowEnd(cf);
      cf.tcp.close();
      cf.http.close();
    }
    this.waiting.delete(cf);
  }

  private logVerdict(cf: ContentFlow, stage: string, action: Action, why: Provenance): void {
    const logStage = LOG_STAGE[stage] ?? 'stream';
    this.o.log({
      kind: 'flow_verdict',
      ...contentFlowFields(cf.meta),
      stage: logStage,
      action: ACTION_NAMES[action] as 'pass' | 'drop' | 'reject' | 'alert',
      rule: logStage === 'av' || logStage === 'dlp' ? null : why.rule,
      ruleSource: null,
      signature: logStage === 'av' ? why.rule : null,
      detector: logStage === 'dlp' ? why.rule : null,
      reason: why.reason,
      direction: why.dir === 1 ? 'to_client' : 'to_server',
      scope: cf.meta.scopeName,
      serverName: null,
      serverNameSource: null,
    });
  }
}
