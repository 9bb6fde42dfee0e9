/**
 * The firewall: first stage of the service chain (docs/architecture.md §3).
 *
 *   packet ─> TCP tracker (exception policies) ─> flow has a verdict? ── yes ─> pass/alert: CONTINUE (an HTTP
 *                                                      │                       connection passed by a name: its
 *                                                      │                       client bytes are read, every request's
 *                                                      │                       Host checked; refused: reject)
 *                                                      │                       drop/reject: VERDICT (cached)
 *                                                      no
 *                                                      ├─ name slot? ─> read client bytes in order from ISN+1, HOLD
 *                                                      └─ evaluate: scope by endpoint id ─> first matching rule
 *                                                           ├─ no known flow (mid-stream): own reading only;
 *                                                           │    allowed: cached; denied: dropped, nothing cached
 *                                                           ├─ needs SNI/Host: handshake passes (no slot); the
 *                                                           │    client's first byte takes a slot
 *                                                           └─ rule action, or the scope's default
 *
 * Verdicts are per flow: the first packet is evaluated and the decision stored in the flow table
 * (FlowAccess.setVerdict), so every later packet in both directions costs a typed-array read (allocation-free).
 * pass and alert return CONTINUE so the later stages (AV, DLP) still see the bytes; drop and reject return VERDICT.
 *
 * Reload: setPolicy swaps the compiled policy between two packets. Flows already decided keep their verdict
 * (docs/policy.md, "Reload"); setPolicy(p, { reevaluate: true }) makes each flow the firewall decided earlier be
 * decided again by the new policy on its next packet. Flows waiting for a name finish under the policy they
 * started with.
 */
import { formatEndpointId } from '../geneve/codec.js';
import { formatIp } from '../packet/address.js';
import { IP_PROTO } from '../packet/types.js';
import { createStreamCounters } from '../stream/events.js';
import { StreamMemcap } from '../stream/memcap.js';
import type { StreamOptions } from '../stream/options.js';
import { ACTION, ACTION_NAMES, DIRECTION, STAGE_RESULT, type Action, type FlowAccess, type PacketContext, type Stage, type StageResult } from '../pipeline/stage.js';
import { compilePolicy, EXCEPTION, UNREADABLE_NEXT_RULE, type CompiledPolicy, type CompiledRule, type CompiledScope, type ExceptionPolicy } from '../policy/compile.js';
import type { PolicyIssue } from '../policy/errors.js';
import { loadPolicy, type LoadedPolicy } from '../policy/load.js';
import { createClientNameOut, NAME_RESULT, NAME_SOURCE, readClientName } from './client-name.js';
import { ClientStream, isAmbiguity, nameStreamMemcapBytes, nameStreamOptions, type ClientBytesReader } from './client-stream.js';
import { CHUNK_PHASE, createChunkState, HTTP_BODY, resetChunkState, skipChunked, type ChunkState } from './http-host.js';
import { createPacketFacts, firstMatch, NAME_MODE, type NameMode } from './evaluate.js';
import { explainFlow, type Explanation, type ExplainInput } from './explain.js';
import { LogLimiter, REASON, type FirewallLogEvent, type LogHook, type Reason } from './log.js';
import { createFlowView, type FlowView } from '../match/rule-index.js';
import { fromClient, MIDSTREAM, PHASE_MASK, TCP_EVENT, TCP_PHASE, track } from './tcp-state.js';

// A type alias (not an interface) so it satisfies Stage.counters' index signature.
export type FirewallCounters = {
  /** Flows decided by evaluating the rules (including after a name was read). */
  decisions: number;
  ruleDecisions: number;
  defaultDecisions: number;
  /** Flows that waited for a TLS SNI / HTTP Host. */
  nameWaits: number;
  namesRead: number;
  namesUnreadable: number;
  /** Name waits ended by the time budget (including onHoldExpired). */
  nameTimeouts: number;
  /** Flows refused a name wait because max_pending_flows was reached. */
  nameMemcap: number;
  tcpInvalid: number;
  /** TCP packets without a known flow, judged in their own reading (sender = client). */
  midstreamPickups: number;
  /** ... whose own reading was denied: dropped, nothing cached. */
  midstreamDenied: number;
  midstreamRefused: number;
  /** Mid-stream flows that reached a rule needing a name: names.on_unknown. */
  namesUnknown: number;
  /** Ambiguous client bytes (before ISN+1, differing overlap, SYN/SYN-ACK disagreeing): names.on_anomaly. */
  streamAnomalies: number;
  /** Client segments past the reader's window, dropped (the client sends them again). */
  readerBeyondWindow: number;
  /** HTTP requests after the first on a connection whose Host was checked. */
  requestsChecked: number;
  /** ... whose Host the rules refused: the connection was reset. */
  requestsRefused: number;
  /** Fresh SYNs on finished connections (5-tuple reuse), decided afresh. */
  tcpNewConnections: number;
  reevaluated: number;
  logsEmitted: number;
  logsSuppressed: number;
};

function createCounters(): FirewallCounters {
  return {
    decisions: 0,
    ruleDecisions: 0,
    defaultDecisions: 0,
    nameWaits: 0,
    namesRead: 0,
    namesUnreadable: 0,
    nameTimeouts: 0,
    nameMemcap: 0,
    tcpInvalid: 0,
    midstreamPickups: 0,
    midstreamDenied: 0,
    midstreamRefused: 0,
    namesUnknown: 0,
    streamAnomalies: 0,
    readerBeyondWindow: 0,
    requestsChecked: 0,
    requestsRefused: 0,
    tcpNewConnections: 0,
    reevaluated: 0,
    logsEmitted: 0,
    logsSuppressed: 0,
  };
}

/** What the reader of a passed HTTP connection expects next. */
const HTTP_READ = { HEAD: 0, BODY: 1, CHUNKED: 2 } as const;

/**
 * A name-read slot: a flow whose client bytes are read for a server name. Pre-shaped; reused. Taken when the client
 * sends its first byte on a flow a name rule may decide (waiting: its packets are held until the name is known);
 * an HTTP connection passed after its name was read keeps it to check every later request (reading).
 */
interface PendingSlot {
  flow: number;
  policy: CompiledPolicy;
  scope: number;
  /** Term to resume evaluation from. */
  resume: number;
  /** Flow-table direction of the client's packets. */
  clientDir: number;
  /** 5-tuple as the client sees it (initiator → responder). */
  view: FlowView;
  tcpFlags: number;
  /** The client's bytes in sequence order from ISN+1 (src/stream reassembly). */
  stream: ClientStream;
  /** False while waiting for the first name; true once passed and reading later HTTP requests. */
  reading: boolean;
  /** This stage returned HOLD for the flow and has not released it yet. */
  holding: boolean;
  httpState: number;
  bodyLeft: number;
  chunk: ChunkState;
  /** Monotonic ms by which the name must be known. */
  deadline: number;
  hasEndpoint: boolean;
  endpointHi: number;
  endpointLo: number;
}

const EXCEPTION_KEYS = { NAME_UNREADABLE: 0, NAME_MEMCAP: 1, TCP_INVALID: 2, TCP_MIDSTREAM: 3, NAME_UNKNOWN: 4, MIDSTREAM_DENIED: 5, STREAM_ANOMALY: 6 } as const;
const EXCEPTION_KEY_COUNT = 7;

/** "No result yet, carry on" from a helper that may also decide the packet (a StageResult). */
const NO_RESULT = -1;
type NoResult = typeof NO_RESULT;

/** Per-flow bits (FirewallStage.flowBits). */
const FLOW_START_KNOWN = 1;
const FLOW_READING = 2;
const SYN_FLAG = 0x02;
const ACK_FLAG = 0x10;

export interface FirewallStageOptions {
  /** Verdict-log hook (the data plane's log sink); default: no-op. */
  onLog?: LogHook;
}

export interface SetPolicyOptions {
  /** Decide again every flow this stage decided under earlier policies, on its next packet. Default false. */
  reevaluate?: boolean;
}

/** Thrown by FirewallStage.fromFile when the policy does not load; carries every issue. */
export class PolicyLoadError extends Error {
  readonly code = 'POLICY_INVALID';
  readonly issues: PolicyIssue[];
  constructor(path: string, issues: PolicyIssue[]) {
    super(`policy ${path} is invalid (${issues.filter((i) => i.severity === 'error').length} errors)`);
    this.name = 'PolicyLoadError';
    this.issues = issues;
  }
}

export class FirewallStage implements Stage, ClientBytesReader {
  readonly name = 'firewall';
  onLog: LogHook;
  readonly counters: FirewallCounters = createCounters();

  private policy: CompiledPolicy;
  private limiter: LogLimiter;
  private readonly view: FlowView = createFlowView();
  private readonly rview: FlowView = createFlowView();
  private readonly facts = createPacketFacts();
  private readonly nameOut = createClientNameOut();
  private scratch: Uint8Array;
  /** The worker's flow table, captured from the packet context (for decisions made outside a packet). */
  private flows: FlowAccess | null = null;

  private readonly pendingByFlow = new Map<number, PendingSlot>();
  private readonly freeSlots: PendingSlot[] = [];
  /** Rotating cursor for reclaiming expired waits when full. */
  private reclaimKeys: number[] = [];

  // Re-evaluation bookkeeping: per flow, the epoch and action of the firewall's own decision (0 = none).
  private epoch = 1;
  private reevalBefore = 0;
  private decidedEpoch = new Uint32Array(0);
  private decidedAction = new Uint8Array(0);
  /** Per flow: ISN+1 of the client's SYN (valid with FLOW_START_KNOWN), and FLOW_* bits. */
  private flowStart = new Uint32Array(0);
  private flowBits = new Uint8Array(0);

  /** Reassembly of the name slots' client streams: options for the current window, one memcap, counters. */
  private nameOpts: StreamOptions;
  private nameMemcap: StreamMemcap;
  /** Per-worker counters of the name streams (STREAM_COUNTER_NAMES). */
  readonly streamCounters = createStreamCounters();
  /** The packet and slot being fed to a ClientStream (its reader callback runs inside the feed). */
  private feedCtx: PacketContext | null = null;
  private feedSlot: PendingSlot | null = null;
  private feedRes: StageResult = STAGE_RESULT.CONTINUE;

  constructor(policy: CompiledPolicy, opts: FirewallStageOptions = {}) {
    this.policy = policy;
    this.onLog = opts.onLog ?? noLog;
    this.limiter = this.makeLimiter(policy);
    this.scratch = new Uint8Array(policy.settings.namesMaxBytes);
    this.nameOpts = nameStreamOptions(policy.settings.namesMaxBytes);
    this.nameMemcap = new StreamMemcap(nameStreamMemcapBytes(policy.settings.namesMaxBytes, policy.settings.namesMaxPendingFlows));
  }

  /**
   * Loads, validates and compiles `path` (includes confined to `policyRoot`, default the file's directory); throws
   * PolicyLoadError with every issue when it is invalid.
   */
  static fromFile(path: string, opts: FirewallStageOptions = {}, policyRoot?: string): FirewallStage {
    const loaded = loadPolicy(path, undefined, policyRoot === undefined ? {} : { root: policyRoot });
    if (!loaded.ok) throw new PolicyLoadError(path, loaded.issues);
    const compiled = compilePolicy(loaded.policy);
    if (!compiled.ok) throw new PolicyLoadError(path, compiled.issues);
    return new FirewallStage(compiled.policy, opts);
  }

  /**
   * From a policy the main thread loaded (LoadedPolicy is plain data: post it to each worker, compile there).
   * Throws PolicyLoadError if it does not compile (which load.ts validation makes a bug, not a user error).
   */
  static fromLoaded(loaded: LoadedPolicy, opts: FirewallStageOptions = {}): FirewallStage {
    const compiled = compilePolicy(loaded);
    if (!compiled.ok) throw new PolicyLoadError(loaded.root, compiled.issues);
    return new FirewallStage(compiled.policy, opts);
  }

  get currentPolicy(): CompiledPolicy {
    return this.policy;
  }

  /** Longest a flow is held waiting for a name, ms (the data plane's hold timer may use it). */
  get holdBudgetMs(): number {
    return this.policy.settings.namesMaxWaitMs;
  }

  /** Flows currently waiting for a server name. */
  get pendingFlows(): number {
    return this.pendingByFlow.size;
  }

  /** Atomic swap: call between packets (same thread). */
  setPolicy(policy: CompiledPolicy, opts: SetPolicyOptions = {}): void {
    this.policy = policy;
    this.limiter = this.makeLimiter(policy);
    const w = policy.settings.namesMaxBytes;
    if (this.scratch.length !== w) this.scratch = new Uint8Array(w);
    if (this.nameOpts.oooMaxBytes !== w) this.nameOpts = nameStreamOptions(w);
    const cap = nameStreamMemcapBytes(w, policy.settings.namesMaxPendingFlows);
    // Streams of slots started earlier keep the memcap they reserved from.
    if (this.nameMemcap.limitBytes !== cap) this.nameMemcap = new StreamMemcap(cap);
    this.epoch++;
    if (opts.reevaluate === true) this.reevalBefore = this.epoch;
  }

  /** Which scope and rule decide a flow, and why (for `gwlb-inspector explain`). */
  explain(input: ExplainInput): Explanation {
    return explainFlow(this.policy, input);
  }

  // ---- packet path ----------------------------------------------------------------------------------------

  onPacket(ctx: PacketContext): StageResult {
    const flows = ctx.flows;
    this.flows = flows;
    const flow = ctx.flow;
    const pkt = ctx.pkt;
    const settings = this.policy.settings;
    let tstate = 0;
    if (pkt.protocol === IP_PROTO.TCP && pkt.l4Offset >= 0) {
      const prev = flows.getTcpState(flow);
      const r = track(prev, ctx.direction, pkt.tcpFlags, settings.midstreamPickup);
      const event = r >>> 8;
      tstate = r & 0xff;
      switch (event) {
        case TCP_EVENT.OK:
          if (tstate !== prev) flows.setTcpState(flow, tstate);
          if ((pkt.tcpFlags & SYN_FLAG) !== 0 && flows.getAction(flow) === ACTION.NONE) {
            const res = this.onHandshake(ctx, prev, tstate);
            if (res !== NO_RESULT) return res;
          }
          break;
        case TCP_EVENT.CLOSED:
          flows.setTcpState(flow, tstate);
          flows.markClosed(flow);
          // Nothing more to read on this connection (a held flow keeps its slot until decided; data on the FIN
          // itself is still read).
          if (pkt.payloadLength === 0 && this.isReading(flow)) this.releasePending(flow);
          break;
        case TCP_EVENT.MIDSTREAM_PICKUP:
          this.counters.midstreamPickups++;
          flows.setTcpState(flow, tstate);
          this.setFlowStart(flow, 0, false);
          break;
        case TCP_EVENT.NEW_CONNECTION:
          this.counters.tcpNewConnections++;
          flows.setTcpState(flow, tstate);
          this.releasePending(flow);
          flows.setVerdict(flow, ACTION.NONE, -1);
          this.setDecided(flow, 0, ACTION.NONE);
          this.setFlowStart(flow, (pkt.tcpSeq + 1) >>> 0, true);
          break;
        case TCP_EVENT.INVALID: {
          this.counters.tcpInvalid++;
          const res = this.exception(ctx, settings.onInvalid, REASON.TCP_INVALID, EXCEPTION_KEYS.TCP_INVALID);
          if (res !== NO_RESULT) return res;
          break;
        }
        default: {
          // MIDSTREAM_REFUSED (there is no pass choice: pickup on is the pass choice).
          this.counters.midstreamRefused++;
          const res = this.exception(ctx, settings.onMidstream, REASON.TCP_MIDSTREAM, EXCEPTION_KEYS.TCP_MIDSTREAM);
          if (res !== NO_RESULT) return res;
        }
      }
    }

    const action = flows.getAction(flow);
    if (action !== ACTION.NONE) {
      if (this.reevalBefore !== 0 && this.needsReevaluation(flow, action)) return this.reevaluate(ctx, tstate, action);
      if (pkt.payloadLength > 0 && this.isReading(flow) && (action === ACTION.PASS || action === ACTION.ALERT)) {
        const slot = this.pendingByFlow.get(flow);
        if (slot !== undefined && ctx.direction === slot.clientDir) return this.onReadingPacket(ctx, slot);
      }
      return cached(ctx, action);
    }
    const slot = this.pendingByFlow.get(flow);
    if (slot !== undefined) return this.onPendingPacket(ctx, slot);
    return this.evaluate(ctx, tstate);
  }

  /**
   * A SYN or SYN-ACK of a flow not decided yet: remember where the client's stream starts (ISN+1 of its SYN), and
   * refuse handshakes that make the start ambiguous (a second SYN with another ISN, a SYN-ACK acknowledging another
   * one): the server might read from a start other than the one the name reader uses. NO_RESULT = carry on.
   */
  private onHandshake(ctx: PacketContext, prev: number, tstate: number): StageResult | NoResult {
    const pkt = ctx.pkt;
    const flow = ctx.flow;
    const prevPhase = prev & PHASE_MASK;
    const fromCli = fromClient(tstate, ctx.direction);
    if ((pkt.tcpFlags & ACK_FLAG) === 0) {
      if (prevPhase === TCP_PHASE.NONE) {
        this.setFlowStart(flow, (pkt.tcpSeq + 1) >>> 0, true);
        return NO_RESULT;
      }
      if (fromCli && this.startKnown(flow) && ((pkt.tcpSeq + 1) >>> 0) !== this.flowStart[flow]) return this.streamAnomaly(ctx, null);
      return NO_RESULT;
    }
    // The SYN-ACK acknowledges ISN+1, or more when it accepts data carried on the SYN (TCP Fast Open, RFC 7413).
    const acked = (pkt.tcpAck - this.flowStart[flow]!) | 0;
    if (!fromCli && this.startKnown(flow) && (acked < 0 || acked > this.policy.settings.namesMaxBytes)) return this.streamAnomaly(ctx, null);
    return NO_RESULT;
  }

  onHoldExpired(flow: number): Action {
    const slot = this.pendingByFlow.get(flow);
    if (slot === undefined) {
      const a = this.flows?.getAction(flow) ?? ACTION.NONE;
      return a === ACTION.NONE ? ACTION.DROP : a;
    }
    this.counters.nameTimeouts++;
    return this.resolveUnreadable(slot);
  }

  onFlowEnd(flow: number): void {
    this.releasePending(flow);
    if (flow < this.decidedEpoch.length) {
      this.decidedEpoch[flow] = 0;
      this.decidedAction[flow] = 0;
    }
    if (flow < this.flowBits.length) this.flowBits[flow] = 0;
  }

  // ---- evaluation -----------------------------------------------------------------------------------------

  private evaluate(ctx: PacketContext, tstate: number): StageResult {
    const policy = this.policy;
    const pkt = ctx.pkt;
    const g = ctx.geneve;
    const scopeIdx = policy.scopeFor(g.hasEndpointId, g.endpointIdHi, g.endpointIdLo);
    const scope = policy.scopes[scopeIdx] as CompiledScope;
    const isTcp = pkt.protocol === IP_PROTO.TCP && pkt.l4Offset >= 0;
    const midstream = isTcp && (tstate & MIDSTREAM) !== 0;
    // The rules read src as the client's side: swap when this packet comes from the server. A packet picked up
    // mid-stream has one reading only: its sender is the client (tcp-state.ts).
    const fromCli = isTcp ? fromClient(tstate, ctx.direction) : ctx.direction === DIRECTION.TO_SERVER;
    const swapped = !fromCli;
    fillView(this.view, ctx, swapped);
    const f = this.facts;
    f.tcpFlags = pkt.tcpFlags;
    f.icmpType = pkt.icmpType;
    f.icmpCode = pkt.icmpCode;
    f.ignoreL4 = pkt.isLaterFragment || pkt.l4Offset < 0;
    // A name can be read only from a stream whose start we saw (the client's SYN).
    const nameReadable = isTcp && !midstream && this.startKnown(ctx.flow);
    f.nameMode = nameReadable ? NAME_MODE.UNKNOWN : midstream ? NAME_MODE.UNREADABLE_STOP : this.unreadableMode();

    const view = this.view;
    const term = firstMatch(policy, scope, view, 0, f);
    // A rule needs the name and no byte has come yet. The handshake passes without taking a slot (a SYN flood
    // costs no slot) and without a verdict: the flow is evaluated again on its next packet, and takes a slot when
    // the client sends its first byte.
    if (term >= 0 && f.stoppedForName && f.nameMode === NAME_MODE.UNKNOWN && pkt.payloadLength === 0) return STAGE_RESULT.CONTINUE;
    this.counters.decisions++;
    if (midstream) return this.decideMidstream(ctx, scope, term);
    if (term < 0) return this.settleCtx(ctx, scope.defaultAction, -1, REASON.DEFAULT, scope, view, null);
    const rule = policy.rules[scope.termRule[term]!] as CompiledRule;
    if (!f.stoppedForName) return this.settleCtx(ctx, rule.action, rule.id, REASON.RULE, scope, view, rule);
    if (f.nameMode !== NAME_MODE.UNKNOWN) return this.settleUnreadable(ctx, scope, view, rule);
    // The server spoke first (SSH, SMTP, ...): there will be no ClientHello or request head to read.
    if (!fromCli) return this.settleUnreadable(ctx, scope, view, rule);
    return this.startPending(ctx, scope, term, swapped);
  }

  /**
   * A TCP packet without a known flow, judged in its own reading only. Allowed (pass, alert): the flow is
   * established, its verdict cached for both directions. Denied: this packet is dropped (or reset, when
   * names.on_unknown is reject and decided it) and nothing is cached, so the real client's next packet can still
   * establish the flow (after a GWLB failover, the server's packet may come first).
   */
  private decideMidstream(ctx: PacketContext, scope: CompiledScope, term: number): StageResult {
    const policy = this.policy;
    let action: Action;
    let rule: CompiledRule | null = null;
    let reason: Reason;
    let key = -1;
    if (term < 0) {
      action = scope.defaultAction;
      reason = REASON.DEFAULT;
    } else {
      rule = policy.rules[scope.termRule[term]!] as CompiledRule;
      if (this.facts.stoppedForName) {
        this.counters.namesUnknown++;
        action = policy.settings.onUnknown;
        reason = REASON.NAME_UNKNOWN;
        key = EXCEPTION_KEYS.NAME_UNKNOWN;
      } else {
        action = rule.action;
        reason = REASON.RULE;
      }
    }
    if (action === ACTION.PASS || action === ACTION.ALERT) return this.settleCtx(ctx, action, rule?.id ?? -1, reason, scope, this.view, rule, key);
    this.counters.midstreamDenied++;
    ctx.flows.setTcpState(ctx.flow, 0);
    const out: Action = reason === REASON.NAME_UNKNOWN && action === ACTION.REJECT ? ACTION.REJECT : ACTION.DROP;
    const g = ctx.geneve;
    this.settle(ctx.flows, ctx.flow, out, rule?.id ?? -1, REASON.MIDSTREAM_DENIED, scope, this.view, rule, key >= 0 ? key : EXCEPTION_KEYS.MIDSTREAM_DENIED, ctx.nowMs,
      g.hasEndpointId ? [g.endpointIdHi, g.endpointIdLo] : null, null, NAME_SOURCE.NONE, false);
    ctx.action = out;
    ctx.ruleId = rule?.id ?? -1;
    ctx.reason = REASON.MIDSTREAM_DENIED;
    return STAGE_RESULT.VERDICT;
  }

  private unreadableMode(): NameMode {
    return this.policy.settings.onUnreadable === UNREADABLE_NEXT_RULE ? NAME_MODE.UNREADABLE_NEXT : NAME_MODE.UNREADABLE_STOP;
  }

  private needsReevaluation(flow: number, action: Action): boolean {
    if (flow >= this.decidedEpoch.length) return false;
    const e = this.decidedEpoch[flow]!;
    // Only verdicts this stage made (another stage's drop is not the firewall's to undo).
    return e !== 0 && e < this.reevalBefore && this.decidedAction[flow] === action;
  }

  private reevaluate(ctx: PacketContext, tstate: number, old: Action): StageResult {
    this.counters.reevaluated++;
    const policy = this.policy;
    const g = ctx.geneve;
    const scope = policy.scopes[policy.scopeFor(g.hasEndpointId, g.endpointIdHi, g.endpointIdLo)] as CompiledScope;
    const pkt = ctx.pkt;
    const isTcp = pkt.protocol === IP_PROTO.TCP && pkt.l4Offset >= 0;
    fillView(this.view, ctx, isTcp ? !fromClient(tstate, ctx.direction) : ctx.direction === DIRECTION.TO_CLIENT);
    const f = this.facts;
    f.tcpFlags = pkt.tcpFlags;
    f.icmpType = pkt.icmpType;
    f.icmpCode = pkt.icmpCode;
    f.ignoreL4 = pkt.isLaterFragment || pkt.l4Offset < 0;
    f.nameMode = NAME_MODE.UNREADABLE_STOP;
    const term = firstMatch(policy, scope, this.view, 0, f);
    if (term >= 0 && f.stoppedForName) {
      // The name was read once, when the connection opened, and is not kept: the old verdict stands.
      this.setDecided(ctx.flow, this.epoch, old);
      return cached(ctx, old);
    }
    if (term < 0) return this.settleCtx(ctx, scope.defaultAction, -1, REASON.DEFAULT, scope, this.view, null);
    const rule = policy.rules[scope.termRule[term]!] as CompiledRule;
    return this.settleCtx(ctx, rule.action, rule.id, REASON.RULE, scope, this.view, rule);
  }

  // ---- waiting for a server name ------------------------------------------------------------------------

  private startPending(ctx: PacketContext, scope: CompiledScope, term: number, swapped: boolean): StageResult {
    const settings = this.policy.settings;
    if (this.pendingByFlow.size >= settings.namesMaxPendingFlows && !this.reclaimExpired(ctx.nowMs)) {
      this.counters.nameMemcap++;
      const rule = this.policy.rules[scope.termRule[term]!] as CompiledRule;
      return this.settleCtx(ctx, settings.onMemcap, rule.id, REASON.NAME_MEMCAP, scope, this.view, rule, EXCEPTION_KEYS.NAME_MEMCAP);
    }
    this.counters.nameWaits++;
    const slot = this.freeSlots.pop() ?? newSlot(this.policy, this.newClientStream());
    if (slot.stream.windowBytes !== settings.namesMaxBytes) slot.stream = this.newClientStream();
    slot.stream.start(this.flowStart[ctx.flow]!);
    slot.flow = ctx.flow;
    slot.policy = this.policy;
    slot.scope = scope.index;
    slot.resume = term;
    slot.clientDir = swapped ? 1 - ctx.direction : ctx.direction;
    copyView(this.view, slot.view);
    slot.tcpFlags = ctx.pkt.tcpFlags;
    slot.reading = false;
    slot.holding = false;
    slot.httpState = HTTP_READ.HEAD;
    slot.bodyLeft = 0;
    resetChunkState(slot.chunk);
    slot.deadline = ctx.nowMs + settings.namesMaxWaitMs;
    slot.hasEndpoint = ctx.geneve.hasEndpointId;
    slot.endpointHi = ctx.geneve.endpointIdHi;
    slot.endpointLo = ctx.geneve.endpointIdLo;
    this.pendingByFlow.set(ctx.flow, slot);
    this.reclaimKeys.push(ctx.flow);
    return this.onPendingPacket(ctx, slot);
  }

  /** Sequence number of the first data byte of this segment (data on a SYN starts after it: TCP Fast Open). */
  private dataSeq(ctx: PacketContext): number {
    const pkt = ctx.pkt;
    return (pkt.tcpFlags & SYN_FLAG) !== 0 ? (pkt.tcpSeq + 1) >>> 0 : pkt.tcpSeq >>> 0;
  }

  private newClientStream(): ClientStream {
    return new ClientStream(this.policy.settings.namesMaxBytes, this.nameOpts, this.nameMemcap, this.streamCounters, this);
  }

  /**
   * Feeds this client segment to the slot's stream. The bytes that become contiguous are read as they arrive
   * (onClientBytes): the first name (waiting) or the requests (reading). A segment the stream does not keep (too far
   * ahead, out-of-order buffer full) is dropped: it must not reach the server unread, and the client sends it
   * again. Bytes a server could read differently (before ISN+1, a differing overlap) are names.on_anomaly's.
   */
  private feed(ctx: PacketContext, slot: PendingSlot): StageResult {
    const pkt = ctx.pkt;
    const cs = slot.stream;
    this.feedCtx = ctx;
    this.feedSlot = slot;
    // Nothing became contiguous (out of order): a waiting flow holds, a reading one passes its packet.
    this.feedRes = slot.reading ? STAGE_RESULT.CONTINUE : STAGE_RESULT.HOLD;
    cs.segment(this.dataSeq(ctx), ctx.buf, pkt.payloadOffset, pkt.payloadLength, ctx.nowMs);
    this.feedCtx = null;
    this.feedSlot = null;
    const owned = slot.flow === ctx.flow;
    if (!owned) cs.close();
    const a = cs.anomaly;
    if (a >= 0) {
      if (isAmbiguity(a)) {
        const r = this.streamAnomaly(ctx, owned ? slot : null);
        if (r !== NO_RESULT) return r;
      } else return this.beyondWindow(ctx, owned ? slot : null);
    }
    if (this.feedRes === STAGE_RESULT.HOLD) {
      // Released meanwhile (names.on_anomaly pass_packet): nothing is waited for any more.
      if (slot.flow !== ctx.flow) return STAGE_RESULT.CONTINUE;
      slot.holding = true;
    }
    return this.feedRes;
  }

  /** ClientBytesReader: bytes of the slot being fed became contiguous. False once the flow is decided or released. */
  onClientBytes(): boolean {
    const ctx = this.feedCtx;
    const slot = this.feedSlot;
    if (ctx === null || slot === null || slot.flow !== ctx.flow) return false;
    const res = slot.reading ? this.readRequests(ctx, slot) : this.readName(ctx, slot);
    this.feedRes = res;
    return slot.flow === ctx.flow && res !== STAGE_RESULT.VERDICT;
  }

  private beyondWindow(ctx: PacketContext, slot: PendingSlot | null): StageResult {
    this.counters.readerBeyondWindow++;
    ctx.action = ACTION.DROP;
    ctx.ruleId = -1;
    ctx.reason = REASON.STREAM_ANOMALY;
    if (slot !== null) slot.holding = false; // the engine discards the flow's held packets with this drop; the client resends them
    return STAGE_RESULT.VERDICT;
  }

  /** names.on_anomaly for a flow whose client bytes are ambiguous. */
  private streamAnomaly(ctx: PacketContext, slot: PendingSlot | null): StageResult | NoResult {
    this.counters.streamAnomalies++;
    const policy = this.policy.settings.onAnomaly;
    if (slot !== null && policy !== EXCEPTION.DROP_PACKET) this.releasePending(slot.flow);
    else if (slot !== null) slot.holding = false;
    return this.exception(ctx, policy, REASON.STREAM_ANOMALY, EXCEPTION_KEYS.STREAM_ANOMALY);
  }

  private onPendingPacket(ctx: PacketContext, slot: PendingSlot): StageResult {
    const pkt = ctx.pkt;
    if (ctx.nowMs > slot.deadline) {
      this.counters.nameTimeouts++;
      return this.finishUnreadable(ctx, slot);
    }
    const isClient = ctx.direction === slot.clientDir;
    if (pkt.payloadLength === 0 || pkt.protocol !== IP_PROTO.TCP) {
      // Pure ACKs wait behind the held bytes (a pass would release them before the name is known).
      return this.holdOrContinue(slot);
    }
    // The server spoke first (SSH, SMTP, ...): there will be no ClientHello or request head to read.
    if (!isClient) return this.finishUnreadable(ctx, slot);
    return this.feed(ctx, slot);
  }

  /** Reads the first name from the contiguous client bytes of a waiting flow; decides it once known. */
  private readName(ctx: PacketContext, slot: PendingSlot): StageResult {
    const reader = slot.stream;
    const out = this.nameOut;
    const r = readClientName(reader.buf, 0, reader.contig, this.scratch, out);
    if (r === NAME_RESULT.NEED_MORE) {
      if (reader.contig >= reader.buf.length) return this.finishUnreadable(ctx, slot);
      slot.holding = true;
      return STAGE_RESULT.HOLD;
    }
    if (r !== NAME_RESULT.FOUND) return this.finishUnreadable(ctx, slot);
    this.counters.namesRead++;
    this.setKnownName(slot, out.name, out.source);
    const res = this.finishWith(ctx, slot, out.name, out.source);
    // An HTTP connection passed after its Host was read: read its later requests too (keep-alive, pipelining).
    if (res === STAGE_RESULT.CONTINUE && out.source === NAME_SOURCE.HTTP && !out.head.opaqueAfter) {
      this.startReading(slot, out.head.headBytes, out.head.body, out.head.bodyBytes);
      return this.readRequests(ctx, slot);
    }
    this.releasePending(ctx.flow);
    return res;
  }

  private holdOrContinue(slot: PendingSlot): StageResult {
    return slot.holding ? STAGE_RESULT.HOLD : STAGE_RESULT.CONTINUE;
  }

  private setKnownName(slot: PendingSlot, name: string, source: number): void {
    const f = this.facts;
    f.ignoreL4 = false;
    f.tcpFlags = slot.tcpFlags;
    f.icmpType = -1;
    f.icmpCode = -1;
    f.nameMode = NAME_MODE.KNOWN;
    f.name = name;
    f.nameSource = source;
  }

  /** The slot's flow was passed by its first request: keep reading its client bytes, request by request. */
  private startReading(slot: PendingSlot, headBytes: number, body: number, bodyBytes: number): void {
    slot.reading = true;
    slot.holding = false;
    slot.deadline = Infinity;
    slot.stream.consume(headBytes);
    this.afterHead(slot, body, bodyBytes);
    this.setBit(slot.flow, FLOW_READING, true);
  }

  private afterHead(slot: PendingSlot, body: number, bodyBytes: number): void {
    slot.httpState = body === HTTP_BODY.LENGTH ? HTTP_READ.BODY : body === HTTP_BODY.CHUNKED ? HTTP_READ.CHUNKED : HTTP_READ.HEAD;
    slot.bodyLeft = bodyBytes;
    resetChunkState(slot.chunk);
  }

  /** A client data packet of a passed HTTP connection whose requests are read. */
  private onReadingPacket(ctx: PacketContext, slot: PendingSlot): StageResult {
    const pkt = ctx.pkt;
    // Fast path: the next bytes of a body, in order: nothing to copy.
    if (slot.httpState === HTTP_READ.BODY && pkt.payloadLength <= slot.bodyLeft && slot.stream.skipInOrder(this.dataSeq(ctx), pkt.payloadLength)) {
      slot.bodyLeft -= pkt.payloadLength;
      if (slot.bodyLeft === 0) slot.httpState = HTTP_READ.HEAD;
      return STAGE_RESULT.CONTINUE;
    }
    return this.feed(ctx, slot);
  }

  /**
   * Walks the contiguous client bytes request by request: skips bodies (Content-Length, chunked), checks each
   * request head's Host against the rules. A head that completes here with a Host the rules refuse (or none, per
   * names.on_unreadable) ends the connection: reject, and this packet (the one completing the head) is dropped,
   * so the server never has the whole head. Partial heads pass: a server acts on a request only once its head ends.
   */
  private readRequests(ctx: PacketContext, slot: PendingSlot): StageResult {
    const reader = slot.stream;
    const out = this.nameOut;
    for (;;) {
      if (reader.contig === 0) return STAGE_RESULT.CONTINUE;
      if (slot.httpState === HTTP_READ.BODY) {
        const n = Math.min(slot.bodyLeft, reader.contig);
        reader.consume(n);
        slot.bodyLeft -= n;
        if (slot.bodyLeft === 0) slot.httpState = HTTP_READ.HEAD;
        continue;
      }
      if (slot.httpState === HTTP_READ.CHUNKED) {
        const n = skipChunked(slot.chunk, reader.buf, 0, reader.contig);
        reader.consume(n);
        if (slot.chunk.phase === CHUNK_PHASE.BAD) return this.unreadableRequest(ctx, slot);
        if (slot.chunk.phase === CHUNK_PHASE.DONE) slot.httpState = HTTP_READ.HEAD;
        continue;
      }
      const r = readClientName(reader.buf, 0, reader.contig, this.scratch, out);
      if (r === NAME_RESULT.NEED_MORE) {
        if (reader.contig < reader.buf.length) return STAGE_RESULT.CONTINUE;
        return this.unreadableRequest(ctx, slot);
      }
      this.counters.requestsChecked++;
      if (r !== NAME_RESULT.FOUND || out.source !== NAME_SOURCE.HTTP) return this.unreadableRequest(ctx, slot);
      this.counters.namesRead++;
      const res = this.endReading(ctx, slot, true, out.name, out.source);
      if (res !== NO_RESULT) return res;
      reader.consume(out.head.headBytes);
      if (out.head.opaqueAfter) {
        // CONNECT or Upgrade: what follows is not HTTP (docs/policy.md, "Server names").
        this.releasePending(slot.flow);
        return STAGE_RESULT.CONTINUE;
      }
      this.afterHead(slot, out.head.body, out.head.bodyBytes);
    }
  }

  /** A later request whose head (or body framing) cannot be read: names.on_unreadable decides the connection. */
  private unreadableRequest(ctx: PacketContext, slot: PendingSlot): StageResult {
    const res = this.endReading(ctx, slot, false, null, NAME_SOURCE.NONE);
    if (res !== NO_RESULT) return res;
    // on_unreadable let it pass: nothing more can be read reliably on this connection.
    this.releasePending(slot.flow);
    return STAGE_RESULT.CONTINUE;
  }

  /**
   * Judges one later request of a reading flow by its name (known) or its unreadable head. Refused: the
   * connection is reset (verdict cached), the slot released, a StageResult returned; allowed: NO_RESULT.
   */
  private endReading(ctx: PacketContext, slot: PendingSlot, known: boolean, name: string | null, source: number): StageResult | NoResult {
    if (known) this.setKnownName(slot, name as string, source);
    else {
      this.counters.namesUnreadable++;
      this.prepareUnreadable(slot);
    }
    const policy = slot.policy;
    const scope = policy.scopes[slot.scope] as CompiledScope;
    const f = this.facts;
    const term = firstMatch(policy, scope, slot.view, slot.resume, f);
    let action: Action;
    let rule: CompiledRule | null = null;
    let reason: Reason = REASON.RULE;
    let key = -1;
    if (term < 0) {
      action = scope.defaultAction;
      reason = REASON.DEFAULT;
    } else {
      rule = policy.rules[scope.termRule[term]!] as CompiledRule;
      if (f.stoppedForName) {
        action = policy.settings.onUnreadable as Action;
        reason = REASON.NAME_UNREADABLE;
        key = EXCEPTION_KEYS.NAME_UNREADABLE;
      } else action = rule.action;
    }
    if (action === ACTION.PASS || action === ACTION.ALERT) return NO_RESULT;
    this.counters.requestsRefused++;
    // The connection carries requests the server already acts on: it ends, both ends told (reject).
    this.settle(ctx.flows, slot.flow, ACTION.REJECT, rule?.id ?? -1, reason, scope, slot.view, rule, key, ctx.nowMs, slotEndpoint(slot), name, source, true);
    this.releasePending(slot.flow);
    return result(ctx, ACTION.REJECT, rule?.id ?? -1, reason);
  }

  /** Resume evaluation of a waiting flow with facts already set; settle it. Does not release the slot. */
  private finishWith(ctx: PacketContext | null, slot: PendingSlot, name: string | null, source: number): StageResult {
    const policy = slot.policy;
    const scope = policy.scopes[slot.scope] as CompiledScope;
    const f = this.facts;
    const term = firstMatch(policy, scope, slot.view, slot.resume, f);
    const flow = slot.flow;
    let action: Action;
    let ruleId = -1;
    let reason: Reason;
    let rule: CompiledRule | null = null;
    let key = -1;
    if (term < 0) {
      action = scope.defaultAction;
      reason = REASON.DEFAULT;
    } else {
      rule = policy.rules[scope.termRule[term]!] as CompiledRule;
      ruleId = rule.id;
      if (f.stoppedForName) {
        action = policy.settings.onUnreadable as Action;
        reason = REASON.NAME_UNREADABLE;
        key = EXCEPTION_KEYS.NAME_UNREADABLE;
      } else {
        action = rule.action;
        reason = REASON.RULE;
      }
    }
    slot.holding = false;
    const flows = ctx?.flows ?? this.flows;
    if (flows !== null) this.settle(flows, flow, action, ruleId, reason, scope, slot.view, rule, key, ctx?.nowMs ?? slot.deadline, slotEndpoint(slot), name, source, true);
    if (ctx === null) return action === ACTION.PASS || action === ACTION.ALERT ? STAGE_RESULT.CONTINUE : STAGE_RESULT.VERDICT;
    return result(ctx, action, ruleId, reason);
  }

  private finishUnreadable(ctx: PacketContext, slot: PendingSlot): StageResult {
    this.counters.namesUnreadable++;
    this.prepareUnreadable(slot);
    const res = this.finishWith(ctx, slot, null, NAME_SOURCE.NONE);
    this.releasePending(slot.flow);
    return res;
  }

  /** Decision for a waiting flow that will never get its name (hold expired); returns the action. */
  private resolveUnreadable(slot: PendingSlot): Action {
    this.counters.namesUnreadable++;
    this.prepareUnreadable(slot);
    const flow = slot.flow;
    this.finishWith(null, slot, null, NAME_SOURCE.NONE);
    this.releasePending(flow);
    const a = this.flows?.getAction(flow) ?? ACTION.DROP;
    return a === ACTION.NONE ? ACTION.DROP : a;
  }

  private prepareUnreadable(slot: PendingSlot): void {
    const f = this.facts;
    f.ignoreL4 = false;
    f.tcpFlags = slot.tcpFlags;
    f.icmpType = -1;
    f.icmpCode = -1;
    f.nameMode = slot.policy.settings.onUnreadable === UNREADABLE_NEXT_RULE ? NAME_MODE.UNREADABLE_NEXT : NAME_MODE.UNREADABLE_STOP;
    f.name = '';
    f.nameSource = NAME_SOURCE.NONE;
  }

  private settleUnreadable(ctx: PacketContext, scope: CompiledScope, view: FlowView, rule: CompiledRule): StageResult {
    this.counters.namesUnreadable++;
    const action = this.policy.settings.onUnreadable as Action;
    return this.settleCtx(ctx, action, rule.id, REASON.NAME_UNREADABLE, scope, view, rule, EXCEPTION_KEYS.NAME_UNREADABLE);
  }

  /** When full: decide waits whose budget ran out (oldest first, bounded work). True when a slot was freed. */
  private reclaimExpired(nowMs: number): boolean {
    const flows = this.flows;
    if (flows === null) return false;
    let freed = false;
    let scanned = 0;
    let i = 0;
    const keys = this.reclaimKeys;
    while (i < keys.length && scanned < 64) {
      const flow = keys[i]!;
      const slot = this.pendingByFlow.get(flow);
      scanned++;
      if (slot === undefined || slot.flow !== flow || slot.reading) {
        i++;
        continue;
      }
      if (slot.deadline >= nowMs) break; // later entries were started later
      this.counters.nameTimeouts++;
      this.resolveUnreadable(slot);
      freed = true;
      i++;
    }
    if (i > 0) this.reclaimKeys = keys.slice(i);
    return freed;
  }

  private releasePending(flow: number): void {
    const slot = this.pendingByFlow.get(flow);
    if (slot === undefined) return;
    this.pendingByFlow.delete(flow);
    this.setBit(flow, FLOW_READING, false);
    slot.flow = -1;
    slot.reading = false;
    slot.holding = false;
    // A stream being fed is closed by feed() once its segment is done.
    if (slot !== this.feedSlot) slot.stream.close();
    this.freeSlots.push(slot);
    // Keep the reclaim queue bounded by the live waits (entries of released flows are skipped, then trimmed).
    if (this.reclaimKeys.length > 2 * this.pendingByFlow.size + 64) {
      this.reclaimKeys = this.reclaimKeys.filter((f) => {
        const s = this.pendingByFlow.get(f);
        return s !== undefined && s.flow === f && !s.reading;
      });
    }
  }

  // ---- decisions ------------------------------------------------------------------------------------------

  private settleCtx(ctx: PacketContext, action: Action, ruleId: number, reason: Reason, scope: CompiledScope, view: FlowView, rule: CompiledRule | null, key = -1): StageResult {
    const g = ctx.geneve;
    this.settle(ctx.flows, ctx.flow, action, ruleId, reason, scope, view, rule, key, ctx.nowMs, g.hasEndpointId ? [g.endpointIdHi, g.endpointIdLo] : null, null, NAME_SOURCE.NONE, true);
    return result(ctx, action, ruleId, reason);
  }

  private settle(
    flows: FlowAccess,
    flow: number,
    action: Action,
    ruleId: number,
    reason: Reason,
    scope: CompiledScope,
    view: FlowView,
    rule: CompiledRule | null,
    exceptionKey: number,
    nowMs: number,
    endpoint: [number, number] | null,
    name: string | null,
    nameSource: number,
    /** false: log only (a mid-stream packet refused in its own reading caches nothing). */
    cache: boolean,
  ): void {
    if (cache) {
      flows.setVerdict(flow, action, ruleId);
      this.setDecided(flow, this.epoch, action);
    }
    if (reason === REASON.RULE) this.counters.ruleDecisions++;
    else if (reason === REASON.DEFAULT) this.counters.defaultDecisions++;
    const policy = this.policy;
    const nRules = policy.rules.length;
    let key: number;
    if (exceptionKey >= 0) key = nRules + policy.scopes.length + exceptionKey;
    else if (rule !== null && policy.rules[rule.id] === rule) key = rule.id;
    else if (rule === null && policy.scopes[scope.index] === scope) key = nRules + scope.index;
    else return; // decided under a policy replaced meanwhile: no rate state for it
    if (!this.limiter.take(key, nowMs)) {
      if (rule !== null ? rule.logPerS > 0 || exceptionKey >= 0 : scope.defaultLogPerS > 0) this.counters.logsSuppressed++;
      return;
    }
    this.counters.logsEmitted++;
    const event: FirewallLogEvent = {
      stage: 'firewall',
      action: ACTION_NAMES[action],
      reason,
      rule: rule === null ? null : rule.name,
      ruleId,
      ruleSource: rule !== null ? `${rule.origin.file}:${rule.origin.line}:${rule.origin.col}` : `${scope.origin.file}:${scope.origin.line}:${scope.origin.col}`,
      scope: scope.name,
      flow,
      proto: view.proto,
      src: formatIp(view.src),
      srcPort: view.sport,
      dst: formatIp(view.dst),
      dstPort: view.dport,
      endpointId: endpoint === null ? null : formatEndpointId(endpoint[0], endpoint[1]),
      serverName: name,
      serverNameSource: nameSource === NAME_SOURCE.TLS ? 'tls' : nameSource === NAME_SOURCE.HTTP ? 'http' : null,
      nowMs,
      suppressed: this.limiter.drain(key),
    };
    this.onLog(event);
  }

  /** Exception policy outcome: a StageResult, or NO_RESULT for pass_packet (carry on as if valid). */
  private exception(ctx: PacketContext, policy: ExceptionPolicy, reason: Reason, key: number): StageResult | NoResult {
    let action: Action = ACTION.DROP;
    if (policy === EXCEPTION.DROP_FLOW) ctx.flows.setVerdict(ctx.flow, ACTION.DROP, -1);
    else if (policy === EXCEPTION.REJECT_FLOW) {
      action = ACTION.REJECT;
      ctx.flows.setVerdict(ctx.flow, ACTION.REJECT, -1);
    }
    this.logException(ctx, policy === EXCEPTION.PASS_PACKET ? ACTION.PASS : action, reason, key);
    if (policy === EXCEPTION.PASS_PACKET) return NO_RESULT;
    ctx.action = action;
    ctx.ruleId = -1;
    ctx.reason = reason;
    return STAGE_RESULT.VERDICT;
  }

  private logException(ctx: PacketContext, action: Action, reason: Reason, key: number): void {
    const policy = this.policy;
    const k = policy.rules.length + policy.scopes.length + key;
    if (!this.limiter.take(k, ctx.nowMs)) {
      this.counters.logsSuppressed++;
      return;
    }
    this.counters.logsEmitted++;
    const pkt = ctx.pkt;
    const g = ctx.geneve;
    this.onLog({
      stage: 'firewall',
      action: ACTION_NAMES[action],
      reason,
      rule: null,
      ruleId: -1,
      ruleSource: null,
      scope: (policy.scopes[policy.scopeFor(g.hasEndpointId, g.endpointIdHi, g.endpointIdLo)] as CompiledScope).name,
      flow: ctx.flow,
      proto: pkt.protocol,
      src: formatIp(pkt.src),
      srcPort: pkt.srcPort,
      dst: formatIp(pkt.dst),
      dstPort: pkt.dstPort,
      endpointId: g.hasEndpointId ? formatEndpointId(g.endpointIdHi, g.endpointIdLo) : null,
      serverName: null,
      serverNameSource: null,
      nowMs: ctx.nowMs,
      suppressed: this.limiter.drain(k),
    });
  }

  private startKnown(flow: number): boolean {
    return flow < this.flowBits.length && (this.flowBits[flow]! & FLOW_START_KNOWN) !== 0;
  }

  private isReading(flow: number): boolean {
    return flow < this.flowBits.length && (this.flowBits[flow]! & FLOW_READING) !== 0;
  }

  private setFlowStart(flow: number, isn1: number, known: boolean): void {
    if (flow >= this.flowBits.length) {
      if (!known) return;
      this.growFlowArrays(flow);
    }
    this.flowStart[flow] = isn1;
    this.setBit(flow, FLOW_START_KNOWN, known);
  }

  private setBit(flow: number, bit: number, on: boolean): void {
    if (flow >= this.flowBits.length) {
      if (!on) return;
      this.growFlowArrays(flow);
    }
    const b = this.flowBits[flow]!;
    this.flowBits[flow] = on ? b | bit : b & ~bit;
  }

  /** Per-flow arrays grow (doubling) with the highest flow index seen: bounded by the flow table's max_flows. */
  private growFlowArrays(flow: number): void {
    const n = grownLength(this.flowBits.length, flow);
    const st = new Uint32Array(n);
    st.set(this.flowStart);
    const b = new Uint8Array(n);
    b.set(this.flowBits);
    this.flowStart = st;
    this.flowBits = b;
  }

  private setDecided(flow: number, epoch: number, action: Action): void {
    if (flow >= this.decidedEpoch.length) {
      if (epoch === 0) return;
      const n = grownLength(this.decidedEpoch.length, flow);
      const e = new Uint32Array(n);
      e.set(this.decidedEpoch);
      const a = new Uint8Array(n);
      a.set(this.decidedAction);
      this.decidedEpoch = e;
      this.decidedAction = a;
    }
    this.decidedEpoch[flow] = epoch;
    this.decidedAction[flow] = action;
  }

  private makeLimiter(policy: CompiledPolicy): LogLimiter {
    const rates: number[] = [];
    for (const r of policy.rules) rates.push(r.logPerS);
    for (const s of policy.scopes) rates.push(s.defaultLogPerS);
    for (let i = 0; i < EXCEPTION_KEY_COUNT; i++) rates.push(policy.settings.logMaxPerS);
    return new LogLimiter(rates);
  }
}

function noLog(): void {}

/** Length of a per-flow array grown (doubling, from at least 1024) until it holds index `flow`. */
function grownLength(current: number, flow: number): number {
  let n = Math.max(1024, current);
  while (n <= flow) n *= 2;
  return n;
}

function cached(ctx: PacketContext, action: Action): StageResult {
  if (action === ACTION.PASS || action === ACTION.ALERT) return STAGE_RESULT.CONTINUE;
  ctx.action = action;
  ctx.ruleId = ctx.flows.getRuleId(ctx.flow);
  ctx.reason = REASON.CACHED;
  return STAGE_RESULT.VERDICT;
}

function result(ctx: PacketContext, action: Action, ruleId: number, reason: Reason): StageResult {
  // pass and alert continue down the chain: AV and DLP must still see the bytes.
  if (action === ACTION.PASS || action === ACTION.ALERT) return STAGE_RESULT.CONTINUE;
  ctx.action = action;
  ctx.ruleId = ruleId;
  ctx.reason = reason;
  return STAGE_RESULT.VERDICT;
}

function fillView(v: FlowView, ctx: PacketContext, swapped: boolean): void {
  const pkt = ctx.pkt;
  v.proto = pkt.protocol;
  const a = swapped ? pkt.dst : pkt.src;
  const b = swapped ? pkt.src : pkt.dst;
  for (let i = 0; i < 4; i++) {
    v.src[i] = a[i]!;
    v.dst[i] = b[i]!;
  }
  v.sport = swapped ? pkt.dstPort : pkt.srcPort;
  v.dport = swapped ? pkt.srcPort : pkt.dstPort;
}

function copyView(from: FlowView, to: FlowView): void {
  to.proto = from.proto;
  to.src.set(from.src);
  to.dst.set(from.dst);
  to.sport = from.sport;
  to.dport = from.dport;
}

function newSlot(policy: CompiledPolicy, stream: ClientStream): PendingSlot {
  return {
    flow: -1,
    policy,
    scope: 0,
    resume: 0,
    clientDir: 0,
    view: createFlowView(),
    tcpFlags: 0,
    stream,
    reading: false,
    holding: false,
    httpState: HTTP_READ.HEAD,
    bodyLeft: 0,
    chunk: createChunkState(),
    deadline: 0,
    hasEndpoint: false,
    endpointHi: 0,
    endpointLo: 0,
  };
}

function slotEndpoint(slot: PendingSlot): [number, number] | null {
  return slot.hasEndpoint ? [slot.endpointHi, slot.endpointLo] : null;
}
