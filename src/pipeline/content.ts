/**
 * The content half of the service chain (docs/architecture.md §3.2): stages that judge the *bytes of a stream*
 * (antivirus, DLP) rather than packets.
 *
 *   packet stages (firewall) ── pass ──> ContentInspector (src/content/inspector.ts), per TCP flow:
 *        TcpStream (reassembly, both directions) ─> Http1Session (objects) ─> each content stage, in chain order
 *          onObjectStart · onBody · onObjectEnd · onGap       (synchronous, on the worker thread)
 *        each blocking stage keeps a *cleared offset* per direction: the stream offset up to which it lets bytes go
 *          setCleared(stage, dir, offset)   — now, or later from an async answer (clamd)
 *          decide(stage, action, why)       — the whole flow, at any time
 *   a packet goes out only when every blocking stage has cleared every byte it carries (ContentHolds, in order)
 *
 * A stage that never calls setCleared clears everything delivered to it (the default, Infinity). A stage that
 * wants to answer at the end of an object (ClamAV) sets its cleared offset to `view.chunkStart` when the object
 * ends — the bytes of the packet that completes the object wait — and back to Infinity when the answer is clean.
 * That keeps TCP moving (everything but the tail flows) while no infected object is delivered whole.
 *
 * Offsets count stream bytes of one direction from ISN+1 (src/stream): offset 0 is the first byte after the SYN,
 * or the first byte seen for a flow picked up mid-stream.
 */
import type { Action } from './stage.js';
import type { HttpAnomaly, HttpEndReason, HttpHead, HttpObjectKind } from '../stream/http1.js';
import type { UnstampedEvent } from '../log/router.js';

/** Everything delivered is cleared (a stage's initial cleared offset). */
export const CLEARED_ALL = Number.POSITIVE_INFINITY;

/** Why a stage decided: the verdict's provenance in logs and stats (docs/architecture.md §5). */
export interface Provenance {
  /** Stable reason code, e.g. av.infected, av.not_scanned, dlp.match, test.match. */
  readonly reason: string;
  /** Signature (AV), detector (DLP) or rule name; null when none applies (a fail mode). */
  readonly rule: string | null;
  /** Words for the log (never stream bytes): which deadline, which limit, clamd's reply. */
  readonly detail?: string;
  /** Direction of the bytes that brought the decision (0 initiator → responder, 1 back), when one did. */
  readonly dir?: number;
}

/** Identity of a flow under content inspection, for scoping and logs. Fixed when inspection starts. */
export interface ContentFlowMeta {
  /** Flow id for logs (unique within the appliance while the flow lives). */
  readonly flowId: string;
  readonly ipVersion: 4 | 6;
  /** Initiator (client) and responder (server) addresses as text, and ports. */
  readonly client: string;
  readonly clientPort: number;
  readonly server: string;
  readonly serverPort: number;
  /** GWLB endpoint id (vpce-…) or null when the GENEVE header carried none. */
  readonly endpointId: string | null;
  /** GWLB attachment id (hex) or null. */
  readonly attachmentId: string | null;
  /** Policy scope index (0: the default scope) and name. */
  readonly scope: number;
  readonly scopeName: string;
  /** True when the flow was picked up without its SYN (degraded: offsets count from the first byte seen). */
  readonly midstream: boolean;
}

/**
 * What a content stage sees of one flow. One object per inspected flow, created by the inspector; a stage may
 * keep it past the call (async answers). After the flow ends (`closed`), every method is a no-op, so a late
 * answer for a flow that expired or was evicted changes nothing.
 */
export interface ContentFlowView {
  readonly meta: ContentFlowMeta;
  /** Index of the flow in the worker's flow table (valid while !closed). */
  readonly flow: number;
  /** The flow ended; late answers are ignored. */
  readonly closed: boolean;
  /** Some stage decided the flow (drop or reject); no more events come. */
  readonly decided: boolean;
  /**
   * During an event: stream offsets [chunkStart, chunkEnd) of the reassembled bytes being delivered in `dir` now.
   * The object events of one chunk (an end, a start, body bytes) all happen inside it.
   */
  readonly chunkStart: number;
  readonly chunkEnd: number;
  /** Bytes delivered in order so far in `dir`. */
  delivered(dir: number): number;
  /**
   * How far `stage` lets bytes of `dir` go: offsets below `offset` are cleared by it (CLEARED_ALL: everything).
   * May be called at any time, also from an async callback: packets it frees are released at once, in order.
   */
  setCleared(stage: ContentStage, dir: number, offset: number): void;
  /**
   * `stage` decides the whole flow: DROP or REJECT discard its held and later packets (REJECT also resets both
   * ends); PASS and ALERT end this stage's interest (its cleared offsets become CLEARED_ALL, ALERT is logged).
   */
  decide(stage: ContentStage, action: Action, why: Provenance): void;
}

/** Health a stage reports to /healthz (docs/antivirus.md: a fail-closed stage without its scanner is down). */
export interface StageHealth {
  readonly state: 'up' | 'degraded' | 'down';
  readonly detail: string;
}

/**
 * A content stage. Events come in stream order per direction; `dir` is 0 (initiator → responder) or 1.
 * Everything runs synchronously on the worker thread: a stage that needs I/O starts it and answers later through
 * the view. Per-flow state is the stage's own (keyed by the view) and freed in onFlowEnd.
 */
export interface ContentStage {
  readonly name: string;
  /** Block mode: the stage's cleared offsets hold packets. Alert mode: never holds; its drop verdicts are logged as alerts. */
  readonly blocking: boolean;
  /** The most bytes of one direction this stage may keep uncleared (held), then onHoldExceeded. */
  readonly holdBudgetBytes: number;
  /** The longest a packet may wait for this stage, ms, then onHoldExceeded. */
  readonly holdBudgetMs: number;
  /** Counters shown under `stages.<name>` in /stats and /metrics. */
  readonly counters?: Readonly<Record<string, number>>;
  /** Whether this stage inspects the flow at all (scope, port, direction); asked once, when inspection starts. */
  wants(meta: ContentFlowMeta): boolean;
  /** A new object in `dir`: an HTTP request or response (with its head) or an opaque stream (head null). */
  onObjectStart(view: ContentFlowView, dir: number, kind: HttpObjectKind, head: HttpHead | null): void;
  /** Decoded body bytes of the current object; `data` is valid only during the call. */
  onBody(view: ContentFlowView, dir: number, data: Uint8Array): void;
  /** The current object of `dir` ended (complete, or cut short: see HTTP_END). */
  onObjectEnd(view: ContentFlowView, dir: number, reason: HttpEndReason): void;
  /** An HTTP-level anomaly in `dir` (counted by the inspector too). */
  onAnomaly?(view: ContentFlowView, dir: number, code: HttpAnomaly): void;
  /**
   * A hold budget of this stage ran out (bytes or ms) in `dir`: return what the stage's fail mode says. PASS or
   * ALERT clear the direction for this stage (CLEARED_ALL); DROP or REJECT decide the flow.
   */
  onHoldExceeded(view: ContentFlowView, dir: number, budget: 'bytes' | 'ms'): Action;
  /** The flow ended (closed, idle, evicted, decided): forget it; later answers for it are ignored anyway. */
  onFlowEnd(view: ContentFlowView): void;
  /** Lifecycle (all optional): connect to a scanner, stop it, report health. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  health?(): StageHealth;
}

/** Where a content stage writes its log events (content_finding, flow_verdict): the worker's verdict log. */
export type ContentLog = (event: UnstampedEvent) => void;

/** What the chain gives a content stage when it creates it. */
export interface ContentStageContext {
  readonly log: ContentLog;
  /** Wall-clock ms since the epoch (for log timestamps); the packet path uses monotonic time. */
  readonly wallNowMs: () => number;
}

/** The flow fields of a log event (log schema `flowFields`) for a flow under content inspection. */
export function contentFlowFields(meta: ContentFlowMeta) {
  return {
    flowId: meta.flowId,
    endpointId: meta.endpointId,
    attachmentId: meta.attachmentId,
    proto: 6,
    src: meta.client,
    srcPort: meta.clientPort,
    dst: meta.server,
    dstPort: meta.serverPort,
    bytesToServer: null,
    bytesToClient: null,
    packetsToServer: null,
    packetsToClient: null,
  };
}
