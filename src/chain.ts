/**
 * The one place the service chain is assembled (docs/architecture.md §3): the packet stage (firewall), then the
 * content stages in registry order (antivirus, DLP, then test stages), each enabled and configured by its own
 * section of the policy. src/pipeline holds only the contracts; nothing there imports a stage.
 *
 * A worker builds its chain from the policy the main thread validated (plain data: every file's text and the
 * parsed document, includes resolved); compiled matchers hold typed arrays and closures that cannot cross threads.
 * Stages are created once and keep their per-flow state across reloads: a reload swaps configuration inside them
 * between two batches. A content stage the new policy disables stops receiving new flows; flows it already
 * follows finish with it.
 */
import { randomBytes } from 'node:crypto';
import type { Stage } from './pipeline/stage.js';
import type { ContentStage, ContentStageContext, StageHealth } from './pipeline/content.js';
import { FirewallStage } from './firewall/stage.js';
import { compilePolicy, type CompiledPolicy } from './policy/compile.js';
import { writeReject } from './packet/reject.js';
import type { LoadedPolicy } from './policy/load.js';
import type { RejectBuilder } from './dataplane/engine.js';
import { DEFAULT_CONTENT_POLICY, type ContentPolicy, type ScopeInfo } from './content/inspector.js';
import { streamOptions } from './stream/options.js';
import type { GeneveHeader } from './geneve/types.js';
import type { Settings } from './config/settings.js';
import { TestMatchStage } from './content/test-stage.js';
import { DlpStage, dlpEnabled, dlpStageConfig } from './dlp/stage.js';
import { AntivirusStage, antivirusEnabled, antivirusStageConfig } from './av/stage.js';

export interface ChainFactoryInput {
  /** Increments on each successful load; visible in /stats per worker. */
  generation: number;
  /** The loaded policy, or null for the built-in pass-everything chain (tests, benches). */
  document: LoadedPolicy | null;
  /** Re-decide flows the firewall decided under the previous policy (default: they keep their verdict). */
  reevaluate?: boolean;
}

/** What the process gives stages beyond the policy (the same in every worker). */
export interface StageEnv {
  /** DLP keyed-hash key (src/dlp/hash-key.ts). */
  readonly dlpHashKey: Buffer;
}

/** A content stage as the registry knows it: when the policy enables it, how to build and reconfigure it. */
interface ContentStageEntry {
  readonly name: string;
  enabled(policy: LoadedPolicy, settings: Settings): boolean;
  create(policy: LoadedPolicy, settings: Settings, ctx: ContentStageContext, env: StageEnv): ContentStage;
  /** Applies a new policy to a live stage; false when it must be replaced instead. */
  reconfigure(stage: ContentStage, policy: LoadedPolicy): boolean;
}

/** The content stages in chain order (firewall → AV → DLP → test stages). */
const CONTENT_STAGES: readonly ContentStageEntry[] = [
  {
    name: 'antivirus',
    enabled: (p) => antivirusEnabled(p),
    create: (p, s, ctx) => new AntivirusStage(antivirusStageConfig(p), s.clamd, ctx),
    reconfigure: (stage, p) => {
      (stage as AntivirusStage).reconfigure(antivirusStageConfig(p));
      return true;
    },
  },
  {
    name: 'dlp',
    enabled: (p) => dlpEnabled(p),
    create: (p, _s, ctx, env) => new DlpStage(dlpStageConfig(p), ctx, env.dlpHashKey),
    reconfigure: (stage, p) => {
      (stage as DlpStage).reconfigure(dlpStageConfig(p));
      return true;
    },
  },
  {
    name: 'test_match',
    enabled: (p, s) => s.enableTestStages && p.testing?.content_match !== undefined,
    create: (p) => new TestMatchStage(p.testing?.content_match as NonNullable<NonNullable<LoadedPolicy['testing']>['content_match']>),
    reconfigure: () => false,
  },
];

export const CONTENT_STAGE_NAMES: readonly string[] = CONTENT_STAGES.map((e) => e.name);


export class Chain {
  /** The packet stages (the firewall). */
  stages: Stage[] = [];
  /** The content stages, in chain order (empty: content inspection off). */
  contentStages: ContentStage[] = [];
  contentPolicy: ContentPolicy = DEFAULT_CONTENT_POLICY;
  readonly rejectBuilder: RejectBuilder = writeReject;
  private firewall: FirewallStage | undefined;
  private readonly live = new Map<string, ContentStage>();
  private readonly onLog: (event: unknown) => void;
  private readonly settings: Settings | null;
  private readonly ctx: ContentStageContext;
  private readonly env: StageEnv;

  constructor(input: ChainFactoryInput, onLog: (event: unknown) => void, settings: Settings | null = null, dlpHashKey: Buffer = randomBytes(32)) {
    this.onLog = onLog;
    this.settings = settings;
    this.env = { dlpHashKey };
    this.ctx = { log: (e) => onLog(e), wallNowMs: () => Date.now() };
    this.apply(input);
  }

  /** Scope of a packet's GWLB endpoint under the policy in force (the content stages' per-scope settings). */
  readonly scopeOf = (gh: GeneveHeader): ScopeInfo => {
    const policy: CompiledPolicy | undefined = this.firewall?.currentPolicy;
    if (policy === undefined) return DEFAULT_SCOPE;
    const index = policy.scopeFor(gh.hasEndpointId, gh.endpointIdHi, gh.endpointIdLo);
    return { index, name: policy.scopes[index]?.name ?? 'default' };
  };

  /** Compiles the new policy completely, then swaps it in. Throws (leaving the old one) if it does not compile. */
  apply(input: ChainFactoryInput): void {
    if (input.document === null) {
      this.stages = [];
      this.contentStages = [];
      return;
    }
    const doc = input.document;
    const compiled = compilePolicy(doc);
    if (!compiled.ok) throw new Error(`policy generation ${input.generation} does not compile: ${compiled.issues.length} issues`);
    // Content stages first: one that cannot be built leaves the whole old chain in force.
    const content: ContentStage[] = [];
    if (this.settings !== null) {
      for (const entry of CONTENT_STAGES) {
        if (!entry.enabled(doc, this.settings)) continue;
        const old = this.live.get(entry.name);
        if (old !== undefined && entry.reconfigure(old, doc)) content.push(old);
        else content.push(entry.create(doc, this.settings, this.ctx, this.env));
      }
    }
    if (this.firewall === undefined) this.firewall = new FirewallStage(compiled.policy, { onLog: this.onLog });
    else this.firewall.setPolicy(compiled.policy, { reevaluate: input.reevaluate === true });
    this.stages = [this.firewall];
    for (const [name, stage] of this.live) {
      if (!content.includes(stage)) {
        this.live.delete(name);
        void stage.stop?.();
      }
    }
    for (const stage of content) {
      if (!this.live.has(stage.name)) {
        this.live.set(stage.name, stage);
        void stage.start?.();
      }
    }
    this.contentStages = content;
    const st = doc.settings.stream;
    this.contentPolicy = Object.freeze({
      onHoleTimeout: st.on_hole_timeout,
      onFragment: st.on_fragment,
      onMemcap: st.on_memcap,
      onUrgent: st.on_urgent,
      headWaitMs: st.head_wait_ms,
      stream: streamOptions({
        depthBytes: st.depth_bytes,
        oooMaxBytes: st.ooo_max_bytes,
        holeWaitMs: st.hole_wait_ms,
        holeWaitBytes: st.hole_wait_bytes,
        onOverlapDifferent: st.on_overlap_different === 'pass' ? 'pass' : 'drop',
        onHole: 'skip',
      }),
    });
  }

  /** Health of the content stages that report one (/healthz). */
  health(): Record<string, StageHealth> {
    const out: Record<string, StageHealth> = {};
    for (const s of this.contentStages) {
      const h = s.health?.();
      if (h !== undefined) out[s.name] = h;
    }
    return out;
  }

  /** Stops every content stage (worker shutdown). */
  async stop(): Promise<void> {
    await Promise.all([...this.live.values()].map((s) => s.stop?.()));
  }
}

const DEFAULT_SCOPE: ScopeInfo = Object.freeze({ index: 0, name: 'default' });
