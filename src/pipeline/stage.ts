/**
 * The one contract every stage of the service chain (firewall → AV → DLP) implements (docs/architecture.md §3):
 * given a flow, a direction and a packet (with its new bytes), return continue, hold or verdict.
 *
 * Stages run on a worker thread, synchronously, once per packet, allocation-free on the fast path. A stage that
 * needs I/O (clamd) starts it, returns HOLD, and later resolves the flow through the worker's `release` API; it
 * never blocks. Per-flow state a stage keeps is keyed by the flow index and freed in onFlowEnd.
 */
import type { GeneveHeader } from '../geneve/types.js';
import type { InnerPacket } from '../packet/types.js';

/** What a stage says about one packet. */
export const STAGE_RESULT = {
  /** Not my decision (or I pass it): go on to the next stage; after the last one the packet is released. */
  CONTINUE: 0,
  /** Keep this packet (the worker copies it) until a later packet or event decides the flow. */
  HOLD: 1,
  /** ctx.action (and ctx.ruleId / ctx.reason) decide this packet; later stages do not see it. */
  VERDICT: 2,
} as const;
export type StageResult = (typeof STAGE_RESULT)[keyof typeof STAGE_RESULT];

/** Verdict actions (docs/architecture.md §3). Numeric so they fit the flow table's typed arrays. */
export const ACTION = {
  /** No verdict yet (flow table initial value). */
  NONE: 0,
  PASS: 1,
  DROP: 2,
  /** drop + TCP RST / ICMP unreachable to both ends through GWLB */
  REJECT: 3,
  /** pass and log */
  ALERT: 4,
} as const;
export type Action = (typeof ACTION)[keyof typeof ACTION];
export const ACTION_NAMES = ['none', 'pass', 'drop', 'reject', 'alert'] as const;

/** Direction of a packet within its flow. */
export const DIRECTION = {
  /** From the flow's initiator (the side whose packet created the flow) to the responder. */
  TO_SERVER: 0,
  /** From the responder back to the initiator. */
  TO_CLIENT: 1,
} as const;
export type Direction = (typeof DIRECTION)[keyof typeof DIRECTION];

/**
 * What a stage may read and write of a flow's shared state (implemented by the worker's flow table).
 * Stages keep anything else in their own structures keyed by flow index and free it in onFlowEnd.
 */
export interface FlowAccess {
  /** Cached verdict of the flow (ACTION.NONE until a stage decides). */
  getAction(flow: number): Action;
  getRuleId(flow: number): number;
  setVerdict(flow: number, action: Action, ruleId: number): void;
  /** Free byte for the firewall's TCP state machine (0 initially). */
  getTcpState(flow: number): number;
  setTcpState(flow: number, state: number): void;
  /** The TCP flow is over (RST, or FIN both ways): the table may expire it sooner. */
  markClosed(flow: number): void;
}

/**
 * Per-packet context, one reused object per worker. Inputs are set by the worker before the chain runs;
 * outputs (action, ruleId, reason) are set by the stage that returns VERDICT.
 */
export interface PacketContext {
  /** The receive buffer; geneve.offset / pkt offsets index into it. */
  buf: Buffer;
  geneve: GeneveHeader;
  pkt: InnerPacket;
  /** Flow index in the worker's flow table. */
  flow: number;
  flows: FlowAccess;
  direction: Direction;
  /** True for the packet that created the flow entry. */
  newFlow: boolean;
  /** Monotonic milliseconds (performance.now() based), read once per batch. */
  nowMs: number;
  action: Action;
  /** Index of the deciding rule in the compiled policy, -1 for a default action. */
  ruleId: number;
  /** Stable reason code, a string constant (never built per packet). */
  reason: string;
}

export interface Stage {
  readonly name: string;
  /** The stage's own counters (exceptions, decisions), shown under `stages` in /stats and /metrics. */
  readonly counters?: Readonly<Record<string, number>>;
  /** How long this stage may hold a flow's packets before onHoldExpired decides, ms (default 1500). */
  readonly holdBudgetMs?: number;
  onPacket(ctx: PacketContext): StageResult;
  /**
   * This stage returned HOLD for the flow and its hold budget (bytes or milliseconds, per policy) ran out:
   * return the action the stage's fail mode decides (PASS releases the held packets, DROP/REJECT discards them).
   */
  onHoldExpired?(flow: number): Action;
  /** The flow left the table (idle, evicted, closed): free per-flow state. */
  onFlowEnd?(flow: number): void;
}
