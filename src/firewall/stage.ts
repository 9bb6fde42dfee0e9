/**
 * The firewall: first stage of the service chain (DESIGN.md §3).
 *
 *   packet ─> TCP tracker (exception policies) ─> flow has a verdict? ── yes ─> pass/alert: CONTINUE
 *                                                      │                       drop/reject: VERDICT (cached)
 *                                                      no
 *                                                      ├─ waiting for a server name? ─> buffer client bytes, HOLD
 *                                                      └─ evaluate: scope by endpoint id ─> first matching rule
 *                                                           ├─ needs SNI/Host ─> wait for the client's first bytes
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
import { ACTION, ACTION_NAMES, DIRECTION, STAGE_RESULT, type Action, type FlowAccess, type PacketContext, type Stage, type StageResult } from '../pipeline/stage.js';
import { compilePolicy, EXCEPTION, UNREADABLE_NEXT_RULE, type CompiledPolicy, type CompiledRule, type CompiledScope, type ExceptionPolicy } from '../policy/compile.js';
import type { PolicyIssue } from '../policy/errors.js';
import { loadPolicy, type LoadedPolicy } from '../policy/load.js';
import { createClientNameOut, NAME_RESULT, NAME_SOURCE, readClientName } from './client-name.js';
import { createPacketFacts, firstMatch, NAME_MODE, type NameMode } from './evaluate.js';
import { explainFlow, type Explanation, type ExplainInput } from './explain.js';
import { LogLimiter, REASON, type FirewallLogEvent, type LogHook, type Reason } from './log.js';
import { createFlowView, type FlowView } from './rule-index.js';
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
  midstreamPickups: number;
  midstreamRefused: number;
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
    midstreamRefused: 0,
    tcpNewConnections: 0,
    reevaluated: 0,
    logsEmitted: 0,
    logsSuppressed: 0,
  };
}

/** A flow waiting for the client's first bytes to name the server. Pre-shaped; reused. */
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
  /** Client bytes so far, in sequence order. */
  buf: Uint8Array;
  len: number;
  nextSeq: number;
  haveSeq: boolean;
  /** Monotonic ms by which the name must be known. */
  deadline: number;
  hasEndpoint: boolean;
  endpointHi: number;
  endpointLo: number;
}

const EMPTY = new Uint8Array(0);

const EXCEPTION_KEYS = { NAME_UNREADABLE: 0, NAME_MEMCAP: 1, TCP_INVALID: 2, TCP_MIDSTREAM: 3 } as const;
const EXCEPTION_KEY_COUNT = 4;

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

export class FirewallStage implements Stage {
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

  constructor(policy: CompiledPolicy, opts: FirewallStageOptions = {}) {
    this.policy = policy;
    this.onLog = opts.onLog ?? noLog;
    this.limiter = this.makeLimiter(policy);
    this.scratch = new Uint8Array(policy.settings.namesMaxBytes);
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
    if (this.scratch.length !== policy.settings.namesMaxBytes) this.scratch = new Uint8Array(policy.settings.namesMaxBytes);
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
          break;
        case TCP_EVENT.CLOSED:
          flows.setTcpState(flow, tstate);
          flows.markClosed(flow);
          break;
        case TCP_EVENT.MIDSTREAM_PICKUP:
          this.counters.midstreamPickups++;
          flows.setTcpState(flow, tstate);
          break;
        case TCP_EVENT.NEW_CONNECTION:
          this.counters.tcpNewConnections++;
          flows.setTcpState(flow, tstate);
          this.releasePending(flow);
          flows.setVerdict(flow, ACTION.NONE, -1);
          this.setDecided(flow, 0, ACTION.NONE);
          break;
        case TCP_EVENT.INVALID: {
          this.counters.tcpInvalid++;
          const res = this.exception(ctx, settings.onInvalid, REASON.TCP_INVALID, EXCEPTION_KEYS.TCP_INVALID);
          if (res >= 0) return res as StageResult;
          break;
        }
        default: {
          // MIDSTREAM_REFUSED (there is no pass choice: pickup on is the pass choice).
          this.counters.midstreamRefused++;
          const res = this.exception(ctx, settings.onMidstream, REASON.TCP_MIDSTREAM, EXCEPTION_KEYS.TCP_MIDSTREAM);
          if (res >= 0) return res as StageResult;
        }
      }
    }

    const action = flows.getAction(flow);
    if (action !== ACTION.NONE) {
      if (this.reevalBefore === 0 || !this.needsReevaluation(flow, action)) return cached(ctx, action);
      return this.reevaluate(ctx, tstate, action);
    }
    const slot = this.pendingByFlow.get(flow);
    if (slot !== undefined) return this.onPendingPacket(ctx, slot);
    return this.evaluate(ctx, tstate);
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
  }

  // ---- evaluation -----------------------------------------------------------------------------------------

  private evaluate(ctx: PacketContext, tstate: number): StageResult {
    const policy = this.policy;
    const pkt = ctx.pkt;
    const g = ctx.geneve;
    const scopeIdx = policy.scopeFor(g.hasEndpointId, g.endpointIdHi, g.endpointIdLo);
    const scope = policy.scopes[scopeIdx] as CompiledScope;
    const isTcp = pkt.protocol === IP_PROTO.TCP && pkt.l4Offset >= 0;
    const ambiguous = isTcp && (tstate & MIDSTREAM) !== 0;
    // The rules read src as the client's side: swap when this packet comes from the server.
    const swapped = isTcp ? !fromClient(tstate, ctx.direction) : ctx.direction === DIRECTION.TO_CLIENT;
    fillView(this.view, ctx, swapped);
    const f = this.facts;
    f.tcpFlags = pkt.tcpFlags;
    f.icmpType = pkt.icmpType;
    f.icmpCode = pkt.icmpCode;
    f.ignoreL4 = pkt.isLaterFragment || pkt.l4Offset < 0;
    // A name can still be read only when the client has not sent data yet: we saw the connection open.
    const phase = tstate & PHASE_MASK;
    const nameReadable = isTcp && !ambiguous && (phase === TCP_PHASE.SYN_SENT || phase === TCP_PHASE.SYN_RCVD);
    f.nameMode = nameReadable ? NAME_MODE.UNKNOWN : this.unreadableMode();

    let view = this.view;
    let term = firstMatch(policy, scope, view, 0, f);
    if (ambiguous) {
      // Mid-stream pickup without a SYN-ACK: either side may be the client; the first rule matching either
      // reading decides (docs/policy.md, "Mid-stream pickup").
      const stopped = f.stoppedForName;
      fillView(this.rview, ctx, !swapped);
      const t2 = firstMatch(policy, scope, this.rview, 0, f);
      if (t2 >= 0 && (term < 0 || t2 < term)) {
        term = t2;
        view = this.rview;
      } else {
        f.stoppedForName = stopped;
      }
    }
    this.counters.decisions++;
    if (term < 0) return this.settleCtx(ctx, scope.defaultAction, -1, REASON.DEFAULT, scope, view, null);
    const rule = policy.rules[scope.termRule[term] as number] as CompiledRule;
    if (!f.stoppedForName) return this.settleCtx(ctx, rule.action, rule.id, REASON.RULE, scope, view, rule);
    if (f.nameMode === NAME_MODE.UNKNOWN) return this.startPending(ctx, scope, term, swapped);
    return this.settleUnreadable(ctx, scope, view, rule);
  }

  private unreadableMode(): NameMode {
    return this.policy.settings.onUnreadable === UNREADABLE_NEXT_RULE ? NAME_MODE.UNREADABLE_NEXT : NAME_MODE.UNREADABLE_STOP;
  }

  private needsReevaluation(flow: number, action: Action): boolean {
    if (flow >= this.decidedEpoch.length) return false;
    const e = this.decidedEpoch[flow] as number;
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
    const rule = policy.rules[scope.termRule[term] as number] as CompiledRule;
    return this.settleCtx(ctx, rule.action, rule.id, REASON.RULE, scope, this.view, rule);
  }

  // ---- waiting for a server name ------------------------------------------------------------------------

  private startPending(ctx: PacketContext, scope: CompiledScope, term: number, swapped: boolean): StageResult {
    const settings = this.policy.settings;
    if (this.pendingByFlow.size >= settings.namesMaxPendingFlows && !this.reclaimExpired(ctx.nowMs)) {
      this.counters.nameMemcap++;
      const rule = this.policy.rules[scope.termRule[term] as number] as CompiledRule;
      return this.settleCtx(ctx, settings.onMemcap, rule.id, REASON.NAME_MEMCAP, scope, this.view, rule, EXCEPTION_KEYS.NAME_MEMCAP);
    }
    this.counters.nameWaits++;
    const slot = this.freeSlots.pop() ?? newSlot(this.policy);
    slot.flow = ctx.flow;
    slot.policy = this.policy;
    slot.scope = scope.index;
    slot.resume = term;
    slot.clientDir = swapped ? 1 - ctx.direction : ctx.direction;
    copyView(this.view, slot.view);
    slot.tcpFlags = ctx.pkt.tcpFlags;
    slot.len = 0;
    slot.haveSeq = false;
    slot.nextSeq = 0;
    slot.deadline = ctx.nowMs + settings.namesMaxWaitMs;
    slot.hasEndpoint = ctx.geneve.hasEndpointId;
    slot.endpointHi = ctx.geneve.endpointIdHi;
    slot.endpointLo = ctx.geneve.endpointIdLo;
    this.pendingByFlow.set(ctx.flow, slot);
    this.reclaimKeys.push(ctx.flow);
    return this.onPendingPacket(ctx, slot);
  }

  private onPendingPacket(ctx: PacketContext, slot: PendingSlot): StageResult {
    const pkt = ctx.pkt;
    const settings = slot.policy.settings;
    if (ctx.nowMs > slot.deadline) {
      this.counters.nameTimeouts++;
      return this.finishUnreadable(ctx, slot);
    }
    const isClient = ctx.direction === slot.clientDir;
    if (pkt.payloadLength === 0 || pkt.protocol !== IP_PROTO.TCP) {
      // Handshake and pure ACKs pass. The clock runs from the client's last packet before its first byte
      // (normally the handshake's final ACK), so a slow handshake does not eat the budget.
      if (isClient && slot.len === 0) slot.deadline = ctx.nowMs + settings.namesMaxWaitMs;
      return STAGE_RESULT.CONTINUE;
    }
    // The server spoke first (SSH, SMTP, ...): there will be no ClientHello or request head to read.
    if (!isClient) return this.finishUnreadable(ctx, slot);
    if (!appendSegment(slot, ctx.buf, pkt.payloadOffset, pkt.payloadLength, pkt.tcpSeq, pkt.tcpFlags, settings.namesMaxBytes)) {
      return this.finishUnreadable(ctx, slot);
    }
    const out = this.nameOut;
    const r = readClientName(slot.buf, 0, slot.len, this.scratch, out);
    if (r === NAME_RESULT.NEED_MORE) {
      if (slot.len >= settings.namesMaxBytes) return this.finishUnreadable(ctx, slot);
      return STAGE_RESULT.HOLD;
    }
    if (r !== NAME_RESULT.FOUND) return this.finishUnreadable(ctx, slot);
    this.counters.namesRead++;
    const f = this.facts;
    f.ignoreL4 = false;
    f.tcpFlags = slot.tcpFlags;
    f.icmpType = -1;
    f.icmpCode = -1;
    f.nameMode = NAME_MODE.KNOWN;
    f.name = out.name;
    f.nameSource = out.source;
    return this.finishWith(ctx, slot, out.name, out.source);
  }

  /** Resume evaluation of a waiting flow with facts already set; settle it. */
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
      rule = policy.rules[scope.termRule[term] as number] as CompiledRule;
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
    const flows = ctx?.flows ?? this.flows;
    if (flows !== null) this.settle(flows, flow, action, ruleId, reason, scope, slot.view, rule, key, ctx?.nowMs ?? slot.deadline, slotEndpoint(slot), name, source);
    // Only now: the slot (and its view) may be reused as soon as it is released.
    this.releasePending(flow);
    if (ctx === null) return action === ACTION.PASS || action === ACTION.ALERT ? STAGE_RESULT.CONTINUE : STAGE_RESULT.VERDICT;
    return result(ctx, action, ruleId, reason);
  }

  private finishUnreadable(ctx: PacketContext, slot: PendingSlot): StageResult {
    this.counters.namesUnreadable++;
    this.prepareUnreadable(slot);
    return this.finishWith(ctx, slot, null, NAME_SOURCE.NONE);
  }

  /** Decision for a waiting flow that will never get its name (hold expired); returns the action. */
  private resolveUnreadable(slot: PendingSlot): Action {
    this.counters.namesUnreadable++;
    this.prepareUnreadable(slot);
    const flow = slot.flow;
    this.finishWith(null, slot, null, NAME_SOURCE.NONE);
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
      const flow = keys[i] as number;
      const slot = this.pendingByFlow.get(flow);
      scanned++;
      if (slot === undefined || slot.flow !== flow) {
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
    slot.flow = -1;
    this.freeSlots.push(slot);
    // Keep the reclaim queue bounded by the live waits (entries of released flows are skipped, then trimmed).
    if (this.reclaimKeys.length > 2 * this.pendingByFlow.size + 64) {
      this.reclaimKeys = this.reclaimKeys.filter((f) => this.pendingByFlow.get(f)?.flow === f);
    }
  }

  // ---- decisions ------------------------------------------------------------------------------------------

  private settleCtx(ctx: PacketContext, action: Action, ruleId: number, reason: Reason, scope: CompiledScope, view: FlowView, rule: CompiledRule | null, key = -1): StageResult {
    const g = ctx.geneve;
    this.settle(ctx.flows, ctx.flow, action, ruleId, reason, scope, view, rule, key, ctx.nowMs, g.hasEndpointId ? [g.endpointIdHi, g.endpointIdLo] : null, null, NAME_SOURCE.NONE);
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
  ): void {
    flows.setVerdict(flow, action, ruleId);
    this.setDecided(flow, this.epoch, action);
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

  /** Exception policy outcome: a StageResult, or -1 for pass_packet (carry on as if valid). */
  private exception(ctx: PacketContext, policy: ExceptionPolicy, reason: Reason, key: number): number {
    let action: Action = ACTION.DROP;
    if (policy === EXCEPTION.DROP_FLOW) ctx.flows.setVerdict(ctx.flow, ACTION.DROP, -1);
    else if (policy === EXCEPTION.REJECT_FLOW) {
      action = ACTION.REJECT;
      ctx.flows.setVerdict(ctx.flow, ACTION.REJECT, -1);
    }
    this.logException(ctx, policy === EXCEPTION.PASS_PACKET ? ACTION.PASS : action, reason, key);
    if (policy === EXCEPTION.PASS_PACKET) return -1;
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

  private setDecided(flow: number, epoch: number, action: Action): void {
    if (flow >= this.decidedEpoch.length) {
      if (epoch === 0) return;
      let n = Math.max(1024, this.decidedEpoch.length);
      while (n <= flow) n *= 2;
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
    v.src[i] = a[i] as number;
    v.dst[i] = b[i] as number;
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

function newSlot(policy: CompiledPolicy): PendingSlot {
  return {
    flow: -1,
    policy,
    scope: 0,
    resume: 0,
    clientDir: 0,
    view: createFlowView(),
    tcpFlags: 0,
    buf: EMPTY,
    len: 0,
    nextSeq: 0,
    haveSeq: false,
    deadline: 0,
    hasEndpoint: false,
    endpointHi: 0,
    endpointLo: 0,
  };
}

function slotEndpoint(slot: PendingSlot): [number, number] | null {
  return slot.hasEndpoint ? [slot.endpointHi, slot.endpointLo] : null;
}

/**
 * Appends a client segment's payload in sequence order (RFC 9293 §3.4 sequence space, modulo 2^32):
 * retransmitted bytes are skipped, a segment beyond a gap is left out (its packet is held, and the budget decides
 * if the gap is never filled). False when the bytes would exceed the budget.
 */
function appendSegment(slot: PendingSlot, buf: Buffer, off: number, len: number, seq: number, flags: number, maxBytes: number): boolean {
  // The SYN occupies one sequence number; data carried on it (TCP Fast Open) starts after it.
  const dataSeq = (flags & 0x02) !== 0 ? (seq + 1) >>> 0 : seq >>> 0;
  if (!slot.haveSeq) {
    slot.haveSeq = true;
    slot.nextSeq = dataSeq;
  }
  const delta = (dataSeq - slot.nextSeq) | 0; // signed distance in sequence space
  if (delta > 0) return true; // gap: wait for the missing bytes
  const skip = -delta;
  if (skip >= len) return true; // pure retransmission
  const add = len - skip;
  if (slot.len + add > maxBytes) return false;
  if (slot.buf.length < maxBytes) {
    const nb = new Uint8Array(maxBytes);
    nb.set(slot.buf.subarray(0, slot.len));
    slot.buf = nb;
  }
  slot.buf.set(buf.subarray(off + skip, off + len), slot.len);
  slot.len += add;
  slot.nextSeq = (slot.nextSeq + add) >>> 0;
  return true;
}
