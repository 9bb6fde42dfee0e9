/**
 * The per-worker packet engine: one batch of received GENEVE datagrams in, a list of datagrams to send out.
 *
 *   decode GENEVE ─> decode inner IP/L4 ─> flow lookup ─> service chain ─> release | hold | drop (+ reject)
 *                                   └─ fragments: FragmentTracker (src/flow/fragments.ts): a first fragment goes
 *                                      the normal way and its verdict is recorded for its datagram; later
 *                                      fragments skip the flow table and follow that verdict (or wait for it)
 *   packet stages pass a TCP packet ─> ContentInspector (src/content/inspector.ts): reassembly, objects, content
 *                                      stages; the packet goes out only once every blocking content stage has
 *                                      cleared its bytes (docs/architecture.md §3.2)
 *
 * It owns no sockets: the worker (worker-main.ts) fills the receive slots with recvmmsg and flushes the two
 * send lists with sendmmsg, so the whole path is testable in-process with real bytes. Allocation-free on the
 * fast path: decode objects, context and send arrays are preallocated; only held packets are copied.
 *
 * Receive layout: datagram i sits at buf[i * slotSize + HEADROOM_BYTES ...]. The HEADROOM_BYTES in front of it
 * receive the outer IPv4 + UDP header on the return path, so allowed packets go back out of the very slot they
 * came in (the GENEVE header bytes are re-sent exactly as received, docs/architecture.md §2).
 */
import { decodeGeneve, GENEVE_PORT, GWLB_MAX_DATAGRAM_BYTES } from '../geneve/codec.js';
import { createGeneveHeader, type GeneveHeader } from '../geneve/types.js';
import { decodeInner } from '../packet/decode.js';
import { createInnerPacket, IP_PROTO, TCP_FLAG, type InnerPacket } from '../packet/types.js';
import { FlowTable } from '../flow/table.js';
import { FragmentTracker, FRAGMENT_RESULT, type HeldFragment } from '../flow/fragments.js';
import { HoldStore, HOLD_REFUSED } from '../pipeline/hold.js';
import { ACTION, DIRECTION, STAGE_RESULT, type Action, type PacketContext, type Stage } from '../pipeline/stage.js';
import { COUNTER, GENEVE_ANOMALY_BASE, INNER_ANOMALY_BASE, bump, fragmentCounters } from './counters.js';
import type { RecvBatchArrays, SendBatchArrays } from './native.js';
import type { Settings } from '../config/settings.js';
import { inCidrs, inSorted, parseCidrList, type CidrList } from './source-guard.js';
import { ContentInspector, CONTENT_RESULT, type ContentOutput } from '../content/inspector.js';
import { CONTENT_COUNTER } from '../content/counters.js';
import type { ContentHeldPacket } from '../pipeline/content-holds.js';
import { StreamMemcap } from '../stream/memcap.js';
import { contentCounters } from './counters.js';
import { DEFAULT_HTTP_OPTIONS } from '../stream/http1.js';

/** Outer IPv4 (20) + UDP (8) header written in front of each payload by the raw return path. */
export const HEADROOM_BYTES = 28;
/**
 * Receive slot: headroom + the largest outer packet GWLB sends (8568 bytes, docs/architecture.md §2), rounded up to a
 * 64-byte multiple: 8640 bytes, so UDP payloads up to 8612 bytes fit (a header with extra options too).
 */
export const SLOT_BYTES = Math.ceil((HEADROOM_BYTES + GWLB_MAX_DATAGRAM_BYTES) / 64) * 64;

/** Self-test probe (health): inner IPv4 UDP to this port carrying the 16-byte per-process nonce. */
export const PROBE_PORT = 7;
export const PROBE_NONCE_BYTES = 16;

export interface SendList extends SendBatchArrays {
  count: number;
}

export function createSendList(capacity: number): SendList {
  return {
    count: 0,
    offs: new Uint32Array(capacity),
    lens: new Uint32Array(capacity),
    srcAddr: new Uint32Array(capacity),
    dstAddr: new Uint32Array(capacity),
    srcPort: new Uint16Array(capacity),
    dstPort: new Uint16Array(capacity),
  };
}

export function createRecvArrays(capacity: number): RecvBatchArrays {
  return {
    lens: new Uint32Array(capacity),
    srcAddr: new Uint32Array(capacity),
    srcPort: new Uint16Array(capacity),
    dstAddr: new Uint32Array(capacity),
    truncated: new Uint8Array(capacity),
  };
}

/**
 * Builds what a reject sends (TCP RST, ICMP unreachable) toward the sender of `pkt` or toward its receiver into
 * `out` at `off`; returns bytes written (0 when nothing may be sent that way).
 */
export type RejectBuilder = (pkt: InnerPacket, buf: Buffer, towardSender: boolean, out: Buffer, off: number) => number;

/** Slots of the tx list (released held packets and originated packets) per worker, SLOT_BYTES each. */
export const TX_SLOTS = 256;

/** Hold time for stages that do not state their own budget (ms). */
export const DEFAULT_HOLD_BUDGET_MS = 1500;

export interface EngineOptions {
  settings: Settings;
  counters: Float64Array;
  flows: FlowTable;
  stages: Stage[];
  probeNonce: Buffer;
  /** Capacity of the originated/released send list (tx buffer slots). */
  txSlots?: number;
  rejectBuilder?: RejectBuilder | undefined;
  /** Sends and empties txSend; without it a full tx list counts further packets as send failures. */
  flushTx?: () => void;
  /**
   * Sends and empties rxSend in the middle of a batch: called before held packets of a content-inspected flow are
   * released during a batch, so that packets the batch released earlier go out first (order within a direction).
   */
  flushRx?: () => void;
  /**
   * The appliance's own IPv4 addresses, sorted (source-guard.ts ownAddresses): datagrams from them are our
   * self-test or a loop, never traffic. The address a datagram was sent to always counts as own.
   */
  ownAddrs?: Uint32Array;
  /** Told about each internal fault (already counted) so the worker can log it, rate-limited. */
  onFault?: (err: unknown) => void;
  /** Where content verdicts are logged (the worker posts them to the verdict log). */
  onContentLog?: ContentLogSink;
}

type ContentLogSink = ConstructorParameters<typeof ContentInspector>[0]['log'];

const HOLD_CHECK: { flow: number; stage: number }[] = [];

export class PacketEngine {
  readonly counters: Float64Array;
  readonly flows: FlowTable;
  readonly holds: HoldStore;
  readonly fragments: FragmentTracker;
  /** Returns of received datagrams, pointing into the receive buffer. */
  readonly rxSend: SendList;
  /** Released held packets and originated packets (RST), in txBuf. */
  readonly txSend: SendList;
  readonly txBuf: Buffer;
  /** Content stages (AV, DLP) over reassembled streams; inactive until the chain configures a stage. */
  readonly content: ContentInspector;
  private stages: Stage[];
  private readonly settings: Settings;
  private readonly gh: GeneveHeader = createGeneveHeader();
  private readonly pkt: InnerPacket = createInnerPacket();
  private readonly ctx: PacketContext;
  private readonly nonce: Buffer;
  private readonly rejectBuilder: RejectBuilder | undefined;
  private readonly txSlots: number;
  /** Sends txSend now (the worker's sendmmsg); called when the tx list fills up in the middle of a batch. */
  private readonly flushTx: (() => void) | undefined;
  private readonly flushRx: (() => void) | undefined;
  /** Scratch decode of a held packet (released through the content inspector, or the source of a reject). */
  private readonly gh2: GeneveHeader = createGeneveHeader();
  private readonly pkt2: InnerPacket = createInnerPacket();
  private inBatch = false;
  private readonly contentCounters: Float64Array;
  private readonly ownAddrs: Uint32Array;
  private readonly gwlbSources: CidrList;
  private readonly passOnFault: boolean;
  private readonly onFault: ((err: unknown) => void) | undefined;

  constructor(opts: EngineOptions) {
    this.settings = opts.settings;
    this.counters = opts.counters;
    this.flows = opts.flows;
    this.stages = opts.stages;
    this.nonce = opts.probeNonce;
    this.rejectBuilder = opts.rejectBuilder;
    this.flushTx = opts.flushTx;
    this.flushRx = opts.flushRx;
    this.ownAddrs = opts.ownAddrs ?? new Uint32Array(0);
    this.gwlbSources = parseCidrList(opts.settings.gwlbSources);
    this.passOnFault = opts.settings.onInternalFault === 'pass';
    this.onFault = opts.onFault;
    this.holds = new HoldStore(opts.settings.maxHeldBytes, opts.settings.maxHeldPacketsPerFlow);
    this.fragments = new FragmentTracker(
      {
        maxDatagrams: opts.settings.fragmentMaxDatagrams,
        memcapBytes: opts.settings.fragmentMemcapBytes,
        timeoutMs: opts.settings.fragmentTimeoutMs,
        maxFragmentsPerDatagram: opts.settings.fragmentMaxPerDatagram,
      },
      fragmentCounters(opts.counters),
    );
    this.rxSend = createSendList(opts.settings.batchSize);
    this.txSlots = opts.txSlots ?? TX_SLOTS;
    this.txSend = createSendList(this.txSlots);
    this.txBuf = Buffer.alloc(this.txSlots * SLOT_BYTES);
    this.ctx = {
      buf: this.txBuf,
      geneve: this.gh,
      pkt: this.pkt,
      flow: -1,
      flows: this.flows,
      direction: DIRECTION.TO_SERVER,
      newFlow: false,
      nowMs: 0,
      action: ACTION.NONE,
      ruleId: -1,
      reason: '',
    };
    const cc = contentCounters(opts.counters);
    this.contentCounters = cc.content;
    this.content = new ContentInspector({
      maxFlows: opts.settings.contentMaxFlows,
      http: DEFAULT_HTTP_OPTIONS,
      memcap: new StreamMemcap(opts.settings.streamMemcapBytes),
      holds: this.holds,
      counters: cc.content,
      streamCounters: cc.stream,
      httpCounters: cc.http,
      out: this.contentOut,
      log: opts.onContentLog ?? (() => {}),
    });
    const prev = this.flows.onRemove;
    this.flows.onRemove = (flow: number) => {
      if (this.holds.has(flow)) this.discardHeld(flow);
      this.content.flowEnd(flow);
      for (const stage of this.stages) stage.onFlowEnd?.(flow);
      prev?.(flow);
    };
  }

  private readonly holdBudgetOf = (stage: number): number => this.stages[stage]?.holdBudgetMs ?? DEFAULT_HOLD_BUDGET_MS;

  /** Atomic swap of the chain between packets (policy reload). */
  setStages(stages: Stage[]): void {
    this.stages = stages;
  }

  /**
   * Processes `count` received datagrams. Fills rxSend (and txSend) for the caller to flush: txSend first, so
   * released held packets precede later packets of their flow.
   */
  processBatch(buf: Buffer, slotSize: number, count: number, meta: RecvBatchArrays, nowMs: number): void {
    const c = this.counters;
    const rx = this.rxSend;
    const own = this.ownAddrs;
    const sources = this.gwlbSources;
    rx.count = 0;
    this.inBatch = true;
    bump(c, COUNTER.RX_BATCHES);
    for (let i = 0; i < count; i++) {
      const off = i * slotSize + HEADROOM_BYTES;
      const len = meta.lens[i] as number;
      bump(c, COUNTER.RX_PACKETS);
      bump(c, COUNTER.RX_BYTES, len);
      if (meta.truncated[i] !== 0) {
        bump(c, COUNTER.TRUNCATED);
        continue;
      }
      const src = meta.srcAddr[i] as number;
      const dst = meta.dstAddr[i] as number;
      const fromSelf = src === dst || inSorted(own, src);
      // Before decoding: GWLB sends only from its own subnets, never from our addresses (docs/configuration.md,
      // "Sources and instances").
      if (!fromSelf && !inCidrs(sources, src)) {
        bump(c, COUNTER.SOURCE_NOT_ALLOWED);
        continue;
      }
      // One try/catch per packet: a fault costs this packet its normal handling (--on-internal-fault), never the batch.
      const queued = rx.count;
      try {
        if (fromSelf) this.processFromSelf(buf, off, len, dst, src, meta.srcPort[i] as number);
        else this.processOne(buf, off, len, dst, src, meta.srcPort[i] as number, nowMs);
      } catch (err) {
        this.internalFault(err, queued, off, len, dst, src, meta.srcPort[i] as number);
      }
    }
    this.inBatch = false;
  }

  /**
   * A datagram from one of our own addresses: our health probe goes back to the prober; anything else (a
   * return we sent to ourselves, another process's probe) would be returned to <own address>:6081 — to us —
   * and loop forever: dropped and counted (loop guard).
   */
  private processFromSelf(buf: Buffer, off: number, len: number, localAddr: number, srcAddr: number, srcPort: number): void {
    const gh = this.gh;
    const pkt = this.pkt;
    if (
      decodeGeneve(buf, off, len, gh) === 0 &&
      decodeInner(buf, off + gh.headerLength, len - gh.headerLength, gh.protocolType, pkt) === 0 &&
      pkt.protocol === IP_PROTO.UDP &&
      pkt.dstPort === PROBE_PORT &&
      this.isProbe(buf)
    ) {
      // Health self-test: went through the real decode path; goes back through the real send path, to the
      // prober's own port (not 6081) so it can never loop into our socket.
      bump(this.counters, COUNTER.SELF_TEST_PACKETS);
      this.queue(this.rxSend, off, len, localAddr, srcAddr, srcPort, srcPort);
      return;
    }
    bump(this.counters, COUNTER.LOOP_DROPPED);
  }

  /** --on-internal-fault for the packet whose processing threw; what it had queued for return is withdrawn. */
  private internalFault(err: unknown, queued: number, off: number, len: number, localAddr: number, gwlbAddr: number, gwlbPort: number): void {
    const c = this.counters;
    bump(c, COUNTER.INTERNAL_FAULTS);
    // (A mid-batch flushRx may have sent and emptied the list since.)
    this.rxSend.count = Math.min(queued, this.rxSend.count);
    if (this.passOnFault) {
      bump(c, COUNTER.FAULT_PASSED);
      this.queueReturn(off, len, localAddr, gwlbAddr, gwlbPort);
    } else {
      bump(c, COUNTER.FAULT_DROPPED);
    }
    this.onFault?.(err);
  }

  private processOne(buf: Buffer, off: number, len: number, localAddr: number, gwlbAddr: number, gwlbPort: number, nowMs: number): void {
    const c = this.counters;
    const gh = this.gh;
    const g = decodeGeneve(buf, off, len, gh);
    if (g !== 0) {
      bump(c, GENEVE_ANOMALY_BASE + g);
      return;
    }
    const pkt = this.pkt;
    const innerOff = off + gh.headerLength;
    const a = decodeInner(buf, innerOff, len - gh.headerLength, gh.protocolType, pkt);
    if (a !== 0) {
      bump(c, INNER_ANOMALY_BASE + a);
      if (pkt.isFragment) {
        // A first fragment without its whole transport header (RFC 1858, RFC 3128, RFC 7112): never passed,
        // whatever --on-malformed says, and the rest of its datagram is dropped with it.
        bump(c, COUNTER.FRAGMENTS);
        this.fragments.tiny(pkt, this.endpointHi(), this.endpointLo(), nowMs);
        return;
      }
      if (this.settings.onMalformed === 'pass') {
        bump(c, COUNTER.MALFORMED_PASSED);
        this.queueReturn(off, len, localAddr, gwlbAddr, gwlbPort);
      }
      return;
    }
    let fragment = -1;
    if (pkt.isFragment) {
      bump(c, COUNTER.FRAGMENTS);
      if (pkt.isLaterFragment) {
        // No transport header: it follows its datagram's first fragment, never a flow of its own.
        const r = this.fragments.later(pkt, this.endpointHi(), this.endpointLo(), nowMs, buf, off, len, localAddr, gwlbAddr, gwlbPort);
        if (r === FRAGMENT_RESULT.PASS) this.queueReturn(off, len, localAddr, gwlbAddr, gwlbPort);
        return;
      }
      fragment = this.fragments.first(pkt, this.endpointHi(), this.endpointLo(), nowMs);
      if (fragment < 0) return;
    }

    const flows = this.flows;
    // The key includes the GWLB endpoint id (0, 0 without the option): tenants' identical 5-tuples never meet.
    // Passed as int32 (the table and the fragment tracker compare with >>> 0): a uint32 ≥ 2^31 is a double, and a
    // double crossing a call that is not inlined is a heap number per packet.
    const epHi = gh.endpointIdHi | 0;
    const epLo = gh.endpointIdLo | 0;
    let flow = flows.lookupOrCreate(pkt, epHi, epLo, nowMs);
    if (!flows.created && this.isNewConnection(flow)) {
      // Same endpoint and 5-tuple, new flow: GWLB renewed the cookie after its idle timeout, or a SYN reopened a
      // closed connection. The old verdict must not carry over: start the flow afresh (docs/architecture.md §2).
      bump(c, COUNTER.FLOW_RENEWALS);
      flows.remove(flow);
      flow = flows.lookupOrCreate(pkt, epHi, epLo, nowMs);
    }
    if (flows.created) {
      bump(c, COUNTER.FLOW_CREATIONS);
      if (gh.hasFlowCookie) flows.setCookie(flow, gh.flowCookie);
    }
    // docs/architecture.md §2: GWLB reuses a 5-tuple with a new cookie after its idle timeout: always keep the newest header.
    // The cookie is kept per flow, the rest of the header once per distinct header (src/flow/header-pool.ts).
    flows.storeHeader(flow, buf, off, gh.headerLength, localAddr, gwlbAddr, gwlbPort, gh.flowCookieOffset);
    flows.countPacket(flow, flows.direction, len - gh.headerLength);

    const ctx = this.ctx;
    ctx.buf = buf;
    ctx.flow = flow;
    ctx.direction = flows.direction as 0 | 1;
    ctx.newFlow = flows.created;
    ctx.nowMs = nowMs;
    ctx.action = ACTION.PASS;
    ctx.ruleId = -1;
    ctx.reason = '';

    const stages = this.stages;
    let holdStage = -1;
    let action: Action = ACTION.PASS;
    for (let s = 0; s < stages.length; s++) {
      const r = (stages[s] as Stage).onPacket(ctx);
      if (r === STAGE_RESULT.CONTINUE) continue;
      if (r === STAGE_RESULT.HOLD) {
        holdStage = s;
        break;
      }
      action = ctx.action;
      break;
    }

    if (holdStage >= 0) {
      const refused = this.holds.hold(flow, holdStage, buf, off, len, localAddr, gwlbAddr, gwlbPort, nowMs);
      if (refused === HOLD_REFUSED.OK) {
        // The first fragment waits with its flow: the rest of its datagram waits for the flow's verdict.
        if (fragment >= 0) this.fragments.pend(fragment, flow);
        return;
      }
      // Budget exhausted: the holding stage's fail mode decides (docs/architecture.md §3).
      const stage = stages[holdStage] as Stage;
      action = stage.onHoldExpired !== undefined ? stage.onHoldExpired(flow) : ACTION.DROP;
      if (refused === HOLD_REFUSED.MEMCAP) {
        // Exception policy for the memcap overrides a pass only toward blocking, never the reverse.
        if (this.settings.onMemcap === 'drop') action = ACTION.DROP;
        if (action === ACTION.DROP) bump(c, COUNTER.MEMCAP_DROPPED);
        else bump(c, COUNTER.MEMCAP_PASSED);
      }
      flows.setVerdict(flow, action, -1);
    }

    if (action === ACTION.PASS || action === ACTION.ALERT) {
      if (this.holds.has(flow)) this.releaseHeld(flow);
      if (this.content.active && pkt.protocol === IP_PROTO.TCP && pkt.l4Offset >= 0) {
        const r =
          fragment >= 0
            ? this.content.fragment(flow, ctx.direction, pkt, gh)
            : this.content.onPacket(flow, ctx.direction, pkt, gh, buf, off, len, localAddr, gwlbAddr, gwlbPort, nowMs);
        if (r !== CONTENT_RESULT.RELEASE) {
          if (fragment >= 0) this.fragments.decide(fragment, ACTION.DROP, this.releaseFragment);
          if (r === CONTENT_RESULT.REJECT) {
            bump(c, COUNTER.REJECTED);
            this.reject(flow, pkt, buf);
          } else if (r === CONTENT_RESULT.DROP) {
            bump(this.contentCounters, CONTENT_COUNTER.PACKETS_DROPPED);
          }
          return;
        }
      }
      bump(c, action === ACTION.PASS ? COUNTER.PASSED : COUNTER.ALERTED);
      if (fragment >= 0 && this.fragments.heldCount(fragment) > 0) {
        // Fragments that waited go out after their first fragment: it goes through the tx list ahead of them.
        this.sendCopy(buf, off, len, localAddr, gwlbAddr, gwlbPort);
      } else {
        this.queueReturn(off, len, localAddr, gwlbAddr, gwlbPort);
      }
      if (fragment >= 0) this.fragments.decide(fragment, action, this.releaseFragment);
      return;
    }
    if (fragment >= 0) this.fragments.decide(fragment, action, this.releaseFragment);
    if (this.holds.has(flow)) this.discardHeld(flow);
    if (action === ACTION.REJECT) {
      bump(c, COUNTER.REJECTED);
      this.reject(flow, this.pkt, buf);
    } else {
      bump(c, COUNTER.DROPPED_POLICY);
    }
  }

  /** The endpoint id halves as int32 (see processOne). */
  private endpointHi(): number {
    return this.gh.hasEndpointId ? this.gh.endpointIdHi | 0 : 0;
  }

  private endpointLo(): number {
    return this.gh.hasEndpointId ? this.gh.endpointIdLo | 0 : 0;
  }

  /** Sends a copy of buf[off, off + len) through the tx list (behind what is queued there already). */
  private sendCopy(buf: Buffer, off: number, len: number, localAddr: number, gwlbAddr: number, gwlbPort: number): void {
    const to = this.txSlot();
    if (to < 0) {
      bump(this.counters, COUNTER.SEND_FAILED);
      return;
    }
    buf.copy(this.txBuf, to, off, off + len);
    this.queue(this.txSend, to, len, localAddr, gwlbAddr, gwlbPort, GENEVE_PORT);
  }

  /** A held fragment whose first fragment passed: out through the tx list. */
  private readonly releaseFragment = (h: HeldFragment): void => {
    this.sendCopy(h.data, 0, h.data.length, h.localAddr, h.gwlbAddr, h.gwlbPort);
  };

  private isNewConnection(flow: number): boolean {
    const gh = this.gh;
    if (gh.hasFlowCookie && (this.flows.flowCookie[flow] as number) !== gh.flowCookie) return true;
    const p = this.pkt;
    return p.protocol === IP_PROTO.TCP && (p.tcpFlags & (TCP_FLAG.SYN | TCP_FLAG.ACK)) === TCP_FLAG.SYN && this.flows.isClosed(flow);
  }

  private isProbe(buf: Buffer): boolean {
    const p = this.pkt;
    if (p.payloadLength !== PROBE_NONCE_BYTES) return false;
    return buf.compare(this.nonce, 0, PROBE_NONCE_BYTES, p.payloadOffset, p.payloadOffset + PROBE_NONCE_BYTES) === 0;
  }

  private queueReturn(off: number, len: number, localAddr: number, gwlbAddr: number, gwlbPort: number): void {
    // docs/architecture.md §2 return path: outer IPs swapped, UDP ports kept (source = GWLB's port, destination = 6081).
    this.queue(this.rxSend, off, len, localAddr, gwlbAddr, gwlbPort, GENEVE_PORT);
  }

  private queue(list: SendList, off: number, len: number, src: number, dst: number, srcPort: number, dstPort: number): void {
    const n = list.count;
    list.offs[n] = off;
    list.lens[n] = len;
    list.srcAddr[n] = src;
    list.dstAddr[n] = dst;
    list.srcPort[n] = srcPort;
    list.dstPort[n] = dstPort;
    list.count = n + 1;
  }

  /** Next free tx slot offset (payload start); flushes a full list first; -1 only when it cannot be flushed. */
  private txSlot(): number {
    if (this.txSend.count >= this.txSlots) {
      this.flushTx?.();
      if (this.txSend.count >= this.txSlots) return -1;
    }
    return this.txSend.count * SLOT_BYTES + HEADROOM_BYTES;
  }

  private releaseHeld(flow: number): void {
    const held = this.holds.take(flow);
    for (const h of held) {
      // A packet the firewall held (name reading) still has to pass the content stages, in order.
      if (this.content.active && !this.passContent(flow, h)) continue;
      const off = this.txSlot();
      if (off < 0) {
        bump(this.counters, COUNTER.SEND_FAILED);
        continue;
      }
      h.data.copy(this.txBuf, off);
      this.queue(this.txSend, off, h.data.length, h.localAddr, h.gwlbAddr, h.gwlbPort, GENEVE_PORT);
      bump(this.counters, COUNTER.HOLD_RELEASED);
    }
    // A first fragment among them: the rest of its datagram follows, after it.
    if (this.fragments.pending > 0) this.fragments.resolveFlow(flow, ACTION.PASS, this.releaseFragment);
  }

  private discardHeld(flow: number): void {
    if (this.fragments.pending > 0) this.fragments.resolveFlow(flow, ACTION.DROP, this.releaseFragment);
    bump(this.counters, COUNTER.HOLD_DISCARDED, this.holds.take(flow).length);
  }

  /**
   * A packet a packet stage held, on its way out: through the content inspector when its flow is inspected.
   * True when it may go now; false when the inspector kept it (it copied it) or dropped it.
   */
  private passContent(flow: number, h: { data: Buffer; localAddr: number; gwlbAddr: number; gwlbPort: number }): boolean {
    const gh = this.gh2;
    const pkt = this.pkt2;
    if (decodeGeneve(h.data, 0, h.data.length, gh) !== 0) return true;
    if (decodeInner(h.data, gh.headerLength, h.data.length - gh.headerLength, gh.protocolType, pkt) !== 0) return true;
    if (pkt.protocol !== IP_PROTO.TCP || pkt.l4Offset < 0 || pkt.isFragment) return true;
    if (this.flows.find(pkt, gh.endpointIdHi | 0, gh.endpointIdLo | 0) !== flow) return true;
    const dir = this.flows.direction;
    const r = this.content.onPacket(flow, dir, pkt, gh, h.data, 0, h.data.length, h.localAddr, h.gwlbAddr, h.gwlbPort, this.ctx.nowMs);
    if (r === CONTENT_RESULT.RELEASE) return true;
    if (r === CONTENT_RESULT.REJECT) {
      bump(this.counters, COUNTER.REJECTED);
      this.reject(flow, pkt, h.data);
    } else if (r === CONTENT_RESULT.DROP) bump(this.contentCounters, CONTENT_COUNTER.PACKETS_DROPPED);
    return false;
  }

  /** How the content inspector sends, orders, resets and records (ContentOutput). */
  private readonly contentOut: ContentOutput = {
    send: (p: ContentHeldPacket): void => this.sendCopy(p.data, 0, p.data.length, p.localAddr, p.gwlbAddr, p.gwlbPort),
    beforeRelease: (): void => {
      if (this.inBatch && this.rxSend.count > 0) this.flushRx?.();
    },
    flush: (): void => {
      if (!this.inBatch) this.flushTx?.();
    },
    reject: (flow: number, data: Buffer): void => {
      const gh = this.gh2;
      const pkt = this.pkt2;
      if (decodeGeneve(data, 0, data.length, gh) !== 0) return;
      if (decodeInner(data, gh.headerLength, data.length - gh.headerLength, gh.protocolType, pkt) !== 0) return;
      bump(this.counters, COUNTER.REJECTED);
      this.reject(flow, pkt, data);
    },
    setVerdict: (flow: number, action: Action): void => this.flows.setVerdict(flow, action, -1),
  };

  /** docs/architecture.md §2: packets we originate on a flow go out inside the newest GENEVE header seen for it. */
  private reject(flow: number, pkt: InnerPacket, buf: Buffer): void {
    const build = this.rejectBuilder;
    if (build === undefined) return;
    const flows = this.flows;
    for (let k = 0; k < 2; k++) {
      const off = this.txSlot();
      if (off < 0) {
        bump(this.counters, COUNTER.SEND_FAILED);
        return;
      }
      const hlen = flows.copyHeader(flow, this.txBuf, off);
      // k = 0: toward the sender of this packet; k = 1: toward its receiver (reject answers both ends).
      const n = build(pkt, buf, k === 0, this.txBuf, off + hlen);
      if (n === 0) continue;
      this.queue(this.txSend, off, hlen + n, flows.localAddrOf(flow), flows.gwlbAddrOf(flow), flows.gwlbPortOf(flow), GENEVE_PORT);
      bump(this.counters, COUNTER.ORIGINATED);
    }
  }

  /**
   * Shutdown (docs/operations.md, "Stopping"): every packet a packet stage still holds is decided now by the
   * holding stage's fail mode, as when its hold budget runs out; what passes goes to txSend for the last flush.
   */
  releaseHolds(): void {
    this.holds.expired(Infinity, this.holdBudgetOf, HOLD_CHECK);
    this.decideHolds();
  }

  /** The flows in HOLD_CHECK ran out of hold budget: their holding stage's fail mode decides. */
  private decideHolds(): void {
    for (const { flow, stage } of HOLD_CHECK) {
      const s = this.stages[stage];
      const action = s?.onHoldExpired !== undefined ? s.onHoldExpired(flow) : ACTION.DROP;
      this.flows.setVerdict(flow, action, -1);
      if (action === ACTION.PASS || action === ACTION.ALERT) this.releaseHeld(flow);
      else this.discardHeld(flow);
    }
  }

  /** Timer work: flow expiry (bounded), hold budgets, gauges. Fills txSend with anything released. */
  tick(nowMs: number): void {
    const c = this.counters;
    const expired = this.flows.expire(nowMs, 100_000);
    bump(c, COUNTER.FLOW_EXPIRATIONS, expired);
    this.fragments.expire(nowMs);
    this.content.tick(nowMs);
    this.holds.expired(nowMs, this.holdBudgetOf, HOLD_CHECK);
    this.decideHolds();
    c[COUNTER.FLOWS_ACTIVE] = this.flows.size;
    c[COUNTER.FLOW_EVICTIONS] = this.flows.evictions;
    c[COUNTER.HELD_PACKETS_NOW] = this.holds.packets;
    c[COUNTER.HELD_BYTES_NOW] = this.holds.bytes;
  }
}
