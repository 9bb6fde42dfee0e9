/**
 * Policy reloads (SIGHUP, file changes): load and compile the new policy completely, and only then hand it to
 * the caller, which swaps it in between packets (FirewallStage.setPolicy). A file that does not load or compile is
 * rejected with its issues, counted, and the running policy stays in force: there is never a moment without a
 * complete policy.
 *
 * Already-decided flows keep their verdict by default: a reload changes what new flows get, and never cuts an
 * established connection by surprise. `reevaluate: true` asks the stages to decide every flow again by the new
 * policy on its next packet (docs/policy.md, "Reload").
 *
 * The manager does no I/O on the packet path. In a multi-worker data plane, the main thread loads (the expensive,
 * I/O-bound part) and posts the LoadedPolicy (plain data, with every file's text) to the workers; each compiles its
 * own copy with compilePolicy() and swaps it in.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { loadPolicyBounded, type LoadBounds } from './bounded-load.js';
import { compilePolicy, type CompiledPolicy, type CompiledStats } from './compile.js';
import { hasErrors, type PolicyIssue } from './errors.js';
import { loadPolicy, type LoadedPolicy, type ReadFile } from './load.js';

/** Quiet time after the last file event before reloading: editors write a file in several steps. */
export const RELOAD_DEBOUNCE_MS = 250;

export type ReloadResult =
  | { ok: true; policy: CompiledPolicy; loaded: LoadedPolicy; generation: number; warnings: PolicyIssue[]; reevaluate: boolean }
  | { ok: false; issues: PolicyIssue[]; generation: number };

/** What loadBounded() yields: the validated plain-data policy (compiled by each data-plane worker), no matchers. */
export type BoundedReloadResult =
  | { ok: true; loaded: LoadedPolicy; generation: number; warnings: PolicyIssue[]; reevaluate: boolean; stats: CompiledStats }
  | { ok: false; issues: PolicyIssue[]; generation: number };

export interface ReloadCounters {
  /** Successful loads (the first one included). */
  reloadOk: number;
  /** Rejected loads: the running policy stayed. */
  reloadFailed: number;
  /** performance.now() of the last attempt, ms; 0 before the first. */
  lastAttemptMs: number;
  lastLoadDurationMs: number;
}

export interface PolicyManagerOptions {
  /** Decide already-decided flows again after each successful reload (default false: they keep their verdict). */
  reevaluate?: boolean;
  /** File reader (tests; the default reads the file system). */
  read?: ReadFile;
  /** Directory tree includes must stay in (--policy-root); default the policy file's directory. */
  root?: string;
  /** Time and memory bound of loadBounded() (--policy-load-timeout-ms, --policy-load-max-mb). */
  bounds?: LoadBounds;
  /** Accept the policy's testing section (--enable-test-stages; default false). */
  allowTesting?: boolean;
}

/** Defaults of the settings policyLoadTimeoutMs and policyLoadMaxMb. */
export const DEFAULT_LOAD_BOUNDS: LoadBounds = Object.freeze({ timeoutMs: 60_000, maxHeapMb: 512 });

export class PolicyManager {
  readonly path: string;
  readonly counters: ReloadCounters = { reloadOk: 0, reloadFailed: 0, lastAttemptMs: 0, lastLoadDurationMs: 0 };
  reevaluate: boolean;
  private readonly read: ReadFile | undefined;
  private readonly root: string | undefined;
  private readonly allowTesting: boolean;
  private readonly bounds: LoadBounds;
  /** The bounded load in progress (loads run one at a time, in order). */
  private queue: Promise<unknown> = Promise.resolve();
  private currentPolicy: CompiledPolicy | null = null;
  private loadedValue: LoadedPolicy | null = null;
  private lastIssues: PolicyIssue[] = [];
  private lastAttemptFiles: string[] = [];
  private gen = 0;

  constructor(path: string, opts: PolicyManagerOptions = {}) {
    this.path = path;
    this.reevaluate = opts.reevaluate ?? false;
    this.read = opts.read;
    this.root = opts.root;
    this.allowTesting = opts.allowTesting ?? false;
    this.bounds = opts.bounds ?? DEFAULT_LOAD_BOUNDS;
  }

  /** The policy in force (null before the first successful load). */
  get current(): CompiledPolicy | null {
    return this.currentPolicy;
  }

  /** Its plain-data form (what a main thread posts to workers). */
  get currentLoaded(): LoadedPolicy | null {
    return this.loadedValue;
  }

  /** Issues of the last rejected load (empty after a successful one). */
  get lastErrors(): PolicyIssue[] {
    return this.lastIssues;
  }

  /** Increments on each successful load. */
  get generation(): number {
    return this.gen;
  }

  /** Loads and compiles the file; on success it becomes current. Never throws for a bad file. */
  load(): ReloadResult {
    const t0 = performance.now();
    this.counters.lastAttemptMs = t0;
    const loaded = loadPolicy(this.path, this.read, { ...(this.root === undefined ? {} : { root: this.root }), testing: this.allowTesting ? 'allow' : 'error' });
    this.lastAttemptFiles = loaded.files;
    let result: ReloadResult;
    if (!loaded.ok) {
      result = { ok: false, issues: loaded.issues, generation: this.gen };
    } else {
      const compiled = compilePolicy(loaded.policy);
      if (!compiled.ok) {
        result = { ok: false, issues: compiled.issues, generation: this.gen };
      } else {
        this.gen++;
        this.currentPolicy = compiled.policy;
        this.loadedValue = loaded.policy;
        result = { ok: true, policy: compiled.policy, loaded: loaded.policy, generation: this.gen, warnings: loaded.issues.filter((i) => !hasErrors([i])), reevaluate: this.reevaluate };
      }
    }
    this.counters.lastLoadDurationMs = performance.now() - t0;
    if (result.ok) {
      this.counters.reloadOk++;
      this.lastIssues = [];
    } else {
      this.counters.reloadFailed++;
      this.lastIssues = result.issues;
    }
    return result;
  }

  /**
   * Loads, validates and trial-compiles the policy in a worker thread within the time and memory bounds
   * (bounded-load.ts), off the main and data-plane threads; on success its LoadedPolicy becomes current (`current`,
   * the main-thread CompiledPolicy, is then null: the data-plane workers compile their own). Never rejects; loads
   * are serialized.
   */
  loadBounded(): Promise<BoundedReloadResult> {
    const run = async (): Promise<BoundedReloadResult> => {
      const t0 = performance.now();
      this.counters.lastAttemptMs = t0;
      const r = await loadPolicyBounded({ path: this.path, root: this.root ?? '', allowTesting: this.allowTesting }, this.bounds);
      this.lastAttemptFiles = r.files;
      this.counters.lastLoadDurationMs = performance.now() - t0;
      if (!r.ok) {
        this.counters.reloadFailed++;
        this.lastIssues = r.issues;
        return { ok: false, issues: r.issues, generation: this.gen };
      }
      this.gen++;
      this.currentPolicy = null;
      this.loadedValue = r.policy;
      this.counters.reloadOk++;
      this.lastIssues = [];
      return { ok: true, loaded: r.policy, generation: this.gen, warnings: r.issues.filter((i) => !hasErrors([i])), reevaluate: this.reevaluate, stats: r.stats };
    };
    const next = this.queue.then(run, run);
    this.queue = next;
    return next;
  }

  /** watch(), with each reload done by loadBounded(). */
  watchBounded(onReload: (r: BoundedReloadResult) => void, debounceMs: number = RELOAD_DEBOUNCE_MS): () => void {
    return watchFiles(
      () => this.files(),
      () => void this.loadBounded().then(onReload),
      debounceMs,
    );
  }

  /** Files to watch: those of the policy in force and those the last attempt read or looked for. */
  files(): string[] {
    const loaded = this.loadedValue;
    const out = new Set<string>([this.path, ...this.lastAttemptFiles]);
    if (loaded !== null) for (const f of Object.keys(loaded.sources)) out.add(f);
    return [...out];
  }

  /**
   * Calls onReload with the result of a reload each time the policy file or one of its includes changes
   * (debounced). Watches the directories (editors replace files by rename). Returns a function that stops it.
   */
  watch(onReload: (r: ReloadResult) => void, debounceMs: number = RELOAD_DEBOUNCE_MS): () => void {
    return watchFiles(
      () => this.files(),
      () => onReload(this.load()),
      debounceMs,
    );
  }
}

/**
 * Debounced change notification for a set of files that may change between calls (includes come and go):
 * `files()` is re-read after every change. Returns a stop function; idempotent.
 */
export function watchFiles(files: () => string[], onChange: () => void, debounceMs: number = RELOAD_DEBOUNCE_MS): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const watchers = new Map<string, FSWatcher>();
  let wanted = new Set<string>();

  const arm = (): void => {
    wanted = new Set(files().map((f) => resolvePath(f)));
    const dirs = new Set([...wanted].map((f) => dirname(f)));
    for (const [dir, w] of watchers) {
      if (!dirs.has(dir)) {
        w.close();
        watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, name) => {
          if (stopped) return;
          if (name !== null && !wanted.has(resolvePath(dir, name.toString())) && ![...wanted].some((f) => basename(f) === name.toString())) return;
          if (timer !== undefined) clearTimeout(timer);
          timer = setTimeout(fire, debounceMs);
        });
        w.on('error', () => {
          w.close();
          watchers.delete(dir);
        });
        watchers.set(dir, w);
      } catch {
        // A directory that vanished: the next successful reload re-arms.
      }
    }
  };
  const fire = (): void => {
    timer = undefined;
    if (stopped) return;
    onChange();
    arm();
  };
  arm();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    for (const w of watchers.values()) w.close();
    watchers.clear();
  };
}
