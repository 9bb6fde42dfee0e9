/**
 * The DLP content stage (docs/dlp.md, docs/architecture.md §3.2): validated detectors over each flow's reassembled,
 * decoded bytes — per object, the request or response head's raw bytes (request line with the URL, header field
 * values) followed by the decoded body; for a stream that is not HTTP, its raw bytes.
 *
 *   block mode:  a match that reaches the detector's likelihood threshold and min_count inside the chunk being
 *                delivered decides the flow at once (view.decide: the inspector drops the packet that completes
 *                the match, so the complete value never reaches the far end). A candidate that cannot be decided
 *                yet (its last byte is the last byte seen, or a keyword within its window may still come) pins
 *                this stage's cleared offset at the start of the chunk that brought it: those bytes wait, within
 *                the hold budget, until more bytes or the end of the object decide it.
 *   alert mode:  never holds; findings are logged when the object ends.
 *
 * Synchronous, on the worker thread. Per flow direction: one ObjectScanner (a tail of ≤ keep bytes, see
 * scanner.ts), match counts per detector and at most MAX_DLP_MATCHES logged matches (hash, mask, offset).
 * The clear value of a match never leaves the scanner's call: logs, counters and errors carry detector names,
 * counts, offsets, keyed hashes and masked forms only.
 */
import { ACTION, type Action } from '../pipeline/stage.js';
import {
  CLEARED_ALL,
  contentFlowFields,
  type ContentFlowMeta,
  type ContentFlowView,
  type ContentStage,
  type ContentStageContext,
} from '../pipeline/content.js';
import type { HttpEndReason, HttpHead, HttpObjectKind } from '../stream/http1.js';
import { MAX_DLP_MATCHES } from '../log/schema.js';
import { builtinPacks, compileDetector, likelihoodLevel, type CompiledDetector, type DetectorSpec } from './detector.js';
import { keyedHash } from './hash-key.js';
import { DlpSectionSchema, effectiveDlp, type DlpScopeSection, type DlpSection } from './policy.js';
import type { LoadedPolicy } from '../policy/load.js';
import { ObjectScanner, ScanPlan, type DlpMatch } from './scanner.js';

export interface DlpStageConfig {
  readonly section: DlpSection;
  /** Per scope name: its `dlp` override (null: none). A flow whose scope is not listed runs the section as is. */
  readonly scopes: ReadonlyMap<string, DlpScopeSection | null>;
}

/** The stage's configuration from a loaded policy (the chain's registry entry: create and reconfigure). */
export function dlpStageConfig(policy: Pick<LoadedPolicy, 'dlp' | 'scopes'>): DlpStageConfig {
  return {
    section: policy.dlp ?? DlpSectionSchema.parse({}),
    scopes: new Map(policy.scopes.map((s) => [s.name, s.dlp] as const)),
  };
}

/** Whether the policy enables DLP anywhere (top level or in a scope): the registry's `enabled`. */
export function dlpEnabled(policy: Pick<LoadedPolicy, 'dlp' | 'scopes'>): boolean {
  const top = policy.dlp?.enabled === true;
  return top || policy.scopes.some((s) => s.dlp?.enabled === true);
}

/** Counter names under stages.dlp in /stats and /metrics. */
export const DLP_COUNTERS = [
  'flows',
  'objects',
  'bytes_scanned',
  'matches',
  'findings',
  'blocked',
  'alerts',
  'holds',
  'hold_exceeded',
  'depth_reached',
] as const;
export type DlpCounters = Record<(typeof DLP_COUNTERS)[number], number>;

/** What one scope runs: its effective section compiled. */
interface ScopePlan {
  readonly section: DlpSection;
  readonly plan: ScanPlan;
  readonly minCount: Int32Array;
  /** Bit 0: to_server scanned, bit 1: to_client. */
  readonly dirs: number;
  readonly depth: readonly [number, number];
  readonly block: boolean;
  readonly action: Action;
}

interface LoggedMatch {
  keyedHash: string;
  masked: string;
  offset: number;
}

interface DirState {
  readonly scanner: ObjectScanner;
  /** Bytes scanned in this direction (all objects): scan depth. */
  scanned: number;
  done: boolean;
  inObject: boolean;
  pinned: boolean;
  /** A hold budget ran out under fail open: do not hold again until nothing is pending. */
  holdOff: boolean;
  /** Matches at or above the threshold in the current object, per detector. */
  readonly counts: Int32Array;
  readonly logged: LoggedMatch[][];
  /** Detector that reached its min_count in the last push, or -1. */
  triggered: number;
}

interface FlowState {
  readonly scope: ScopePlan;
  readonly dirs: [DirState | null, DirState | null];
}

const DIR_NAMES = ['to_server', 'to_client'] as const;

export class DlpStage implements ContentStage {
  readonly name = 'dlp';
  readonly counters: DlpCounters;
  private readonly ctx: ContentStageContext;
  private readonly hashKey: Buffer;
  private top!: ScopePlan | null;
  private perScope = new Map<string, ScopePlan | null>();
  private config!: DlpStageConfig;
  private readonly flows = new Map<ContentFlowView, FlowState>();

  constructor(config: DlpStageConfig, ctx: ContentStageContext, hashKey: Buffer) {
    this.ctx = ctx;
    this.hashKey = hashKey;
    this.counters = Object.fromEntries(DLP_COUNTERS.map((n) => [n, 0])) as DlpCounters;
    this.reconfigure(config);
  }

  /** A new policy: later flows use it; flows under inspection keep the plan they started with. */
  reconfigure(config: DlpStageConfig): void {
    const cache = new Map<string, ScopePlan>();
    const build = (section: DlpSection): ScopePlan | null => {
      if (!section.enabled) return null;
      const key = JSON.stringify(section);
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      const plan = this.compile(section);
      cache.set(key, plan);
      return plan;
    };
    const top = build(config.section);
    const perScope = new Map<string, ScopePlan | null>();
    for (const [name, scope] of config.scopes) perScope.set(name, build(effectiveDlp(config.section, scope)));
    this.config = config;
    this.top = top;
    this.perScope = perScope;
  }

  /** Block mode anywhere: this stage's cleared offsets may hold packets. */
  get blocking(): boolean {
    if (this.top?.block === true) return true;
    for (const p of this.perScope.values()) if (p?.block === true) return true;
    return false;
  }

  get holdBudgetBytes(): number {
    return this.config.section.hold_budget_bytes;
  }

  get holdBudgetMs(): number {
    return this.config.section.hold_budget_ms;
  }

  private compile(section: DlpSection): ScopePlan {
    const packs = builtinPacks();
    const specs: DetectorSpec[] = [];
    for (const name of section.packs) for (const d of packs.get(name)?.detectors ?? []) specs.push(d);
    for (const d of section.custom) specs.push(d);
    const chosen = specs.filter((s) => section.detectors[s.name]?.enabled !== false);
    const detectors: CompiledDetector[] = chosen.map(compileDetector);
    const threshold = chosen.map((s) => likelihoodLevel(section.detectors[s.name]?.min_likelihood ?? section.min_likelihood));
    const minCount = Int32Array.from(chosen.map((s) => section.detectors[s.name]?.min_count ?? s.min_count));
    const key = this.hashKey;
    return {
      section,
      plan: new ScanPlan(detectors, threshold, (v) => keyedHash(key, v)),
      minCount,
      dirs: (section.directions.includes('to_server') ? 1 : 0) | (section.directions.includes('to_client') ? 2 : 0),
      depth: [section.scan_depth_bytes.to_server, section.scan_depth_bytes.to_client],
      block: section.mode === 'block',
      action: section.action === 'drop' ? ACTION.DROP : ACTION.REJECT,
    };
  }

  private scopeOf(meta: ContentFlowMeta): ScopePlan | null {
    const p = this.perScope.get(meta.scopeName);
    return p === undefined ? this.top : p;
  }

  wants(meta: ContentFlowMeta): boolean {
    const p = this.scopeOf(meta);
    return p !== null && p.dirs !== 0 && p.plan.detectors.length > 0;
  }

  private state(view: ContentFlowView, dir: number): DirState | null {
    let f = this.flows.get(view);
    if (f === undefined) {
      const scope = this.scopeOf(view.meta);
      if (scope === null) return null;
      f = { scope, dirs: [null, null] };
      this.flows.set(view, f);
      this.counters.flows++;
    }
    if ((f.scope.dirs & (1 << dir)) === 0) return null;
    let d = f.dirs[dir];
    if (d === undefined || d === null) {
      const n = f.scope.plan.detectors.length;
      const st: DirState = {
        scanner: null as unknown as ObjectScanner,
        scanned: 0,
        done: false,
        inObject: false,
        pinned: false,
        holdOff: false,
        counts: new Int32Array(n),
        logged: Array.from({ length: n }, () => []),
        triggered: -1,
      };
      const scope = f.scope;
      (st as { scanner: ObjectScanner }).scanner = new ObjectScanner(scope.plan, (m) => this.onMatch(scope, st, m));
      d = st;
      f.dirs[dir] = d;
    }
    return d;
  }

  private onMatch(scope: ScopePlan, st: DirState, m: DlpMatch): void {
    this.counters.matches++;
    if (m.level < scope.plan.threshold[m.detector]!) return;
    const c = ++st.counts[m.detector]!;
    const list = st.logged[m.detector]!;
    if (list.length < MAX_DLP_MATCHES) list.push({ keyedHash: m.keyedHash, masked: m.masked, offset: m.offset });
    if (c === scope.minCount[m.detector] && st.triggered < 0) st.triggered = m.detector;
  }

  onObjectStart(view: ContentFlowView, dir: number, kind: HttpObjectKind, head: HttpHead | null): void {
    void kind;
    const st = this.state(view, dir);
    if (st === null || st.done || view.decided) return;
    if (st.inObject) this.finishObject(view, dir, st);
    st.scanner.reset();
    st.counts.fill(0);
    for (const l of st.logged) l.length = 0;
    st.inObject = true;
    this.counters.objects++;
    if (head !== null) this.feed(view, dir, st, head.raw);
  }

  onBody(view: ContentFlowView, dir: number, data: Uint8Array): void {
    const st = this.state(view, dir);
    if (st === null || st.done || view.decided) return;
    if (!st.inObject) {
      st.scanner.reset();
      st.inObject = true;
      this.counters.objects++;
    }
    this.feed(view, dir, st, data);
  }

  onObjectEnd(view: ContentFlowView, dir: number, reason: HttpEndReason): void {
    void reason;
    const st = this.state(view, dir);
    if (st === null || st.done || !st.inObject || view.decided) return;
    this.finishObject(view, dir, st);
  }

  /** Scans `data` (within the scan depth), then decides, holds or releases. */
  private feed(view: ContentFlowView, dir: number, st: DirState, data: Uint8Array): void {
    const scope = this.flows.get(view)!.scope;
    const room = scope.depth[dir]! - st.scanned;
    const part = data.length <= room ? data : data.subarray(0, Math.max(0, room));
    st.scanned += part.length;
    this.counters.bytes_scanned += part.length;
    st.scanner.push(part);
    if (part.length < data.length) {
      // Scan depth reached: what is pending is decided on what was seen; the rest of the direction passes.
      this.counters.depth_reached++;
      st.scanner.end();
      st.done = true;
    }
    if (this.settle(view, dir, st, scope)) return;
    if (st.done) this.finishObject(view, dir, st);
  }

  /** After a push: block on a detector that reached its count; hold or release pending bytes. True: decided. */
  private settle(view: ContentFlowView, dir: number, st: DirState, scope: ScopePlan): boolean {
    if (st.triggered >= 0 && scope.block) {
      const d = st.triggered;
      st.triggered = -1;
      const det = scope.plan.detectors[d]!;
      this.counters.findings++;
      this.counters.blocked++;
      this.logFinding(view, dir, scope, st, d, scope.action);
      st.done = true;
      view.decide(this, scope.action, { reason: 'dlp.match', rule: det.name });
      return true;
    }
    if (!scope.block) return false;
    const pending = st.scanner.pending;
    if (!pending) st.holdOff = false;
    if (pending && !st.pinned && !st.holdOff) {
      st.pinned = true;
      this.counters.holds++;
      view.setCleared(this, dir, view.chunkStart);
    } else if (!pending && st.pinned) {
      st.pinned = false;
      view.setCleared(this, dir, CLEARED_ALL);
    }
    return false;
  }

  /** The object ended (or the next began, or the depth was reached): decide its pending candidates; log in alert mode. */
  private finishObject(view: ContentFlowView, dir: number, st: DirState): void {
    const scope = this.flows.get(view)!.scope;
    st.scanner.end();
    st.inObject = false;
    if (this.settle(view, dir, st, scope)) return;
    if (!scope.block) this.logAlerts(view, dir, scope, st);
    st.triggered = -1;
  }

  private logAlerts(view: ContentFlowView, dir: number, scope: ScopePlan, st: DirState): void {
    for (let d = 0; d < st.counts.length; d++) {
      if (st.counts[d]! < scope.minCount[d]!) continue;
      this.counters.findings++;
      this.counters.alerts++;
      this.logFinding(view, dir, scope, st, d, ACTION.ALERT);
      st.counts[d] = 0;
      st.logged[d]!.length = 0;
    }
  }

  private logFinding(view: ContentFlowView, dir: number, scope: ScopePlan, st: DirState, d: number, action: Action): void {
    const det = scope.plan.detectors[d]!;
    this.ctx.log({
      kind: 'content_finding',
      ...contentFlowFields(view.meta),
      stage: 'dlp',
      action: action === ACTION.DROP ? 'drop' : action === ACTION.REJECT ? 'reject' : 'alert',
      rule: det.name,
      ruleSource: null,
      signature: null,
      detector: det.name,
      reason: 'dlp.match',
      direction: DIR_NAMES[dir] ?? 'to_server',
      finding: {
        type: 'dlp',
        detector: det.name,
        matchCount: st.counts[d]!,
        matches: st.logged[d]!.map((m) => ({ keyedHash: m.keyedHash, masked: m.masked, offset: m.offset })),
        // Not the URL: a request target can carry the very value that matched.
        objectName: null,
      },
    });
  }

  onHoldExceeded(view: ContentFlowView, dir: number, budget: 'bytes' | 'ms'): Action {
    void budget;
    this.counters.hold_exceeded++;
    const f = this.flows.get(view);
    const st = f?.dirs[dir] ?? null;
    if (st !== null) {
      st.pinned = false;
      st.holdOff = true;
    }
    const section = f?.scope.section ?? this.config.section;
    if (section.fail === 'open') return ACTION.PASS;
    if (st !== null) st.done = true;
    return section.action === 'drop' ? ACTION.DROP : ACTION.REJECT;
  }

  onFlowEnd(view: ContentFlowView): void {
    const f = this.flows.get(view);
    if (f === undefined) return;
    this.flows.delete(view);
    if (f.scope.block || view.decided) return;
    // Alert mode: an object cut short by the end of the flow still reports what it held.
    for (let dir = 0; dir < 2; dir++) {
      const st = f.dirs[dir];
      if (st === null || st === undefined || st.done || !st.inObject) continue;
      st.scanner.end();
      this.logAlerts(view, dir, f.scope, st);
    }
  }
}
