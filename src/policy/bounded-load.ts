/**
 * Policy loading off the main and data-plane threads, within a time and a memory bound: a worker thread with
 * resourceLimits loads, validates and trial-compiles the policy (load-worker.ts) and posts the LoadedPolicy back.
 * Past --policy-load-timeout-ms it is terminated; past --policy-load-max-mb of heap V8 stops it. Either way the
 * result is a `limit` issue naming the bound, and the caller keeps its running policy. Because the trial compile
 * succeeded within the bounds, the data-plane workers' own compile of the same LoadedPolicy is bounded too.
 *
 * The cheap guards run first inside the worker (load.ts: file size, include depth, and the rule-count estimate
 * checked before anything is expanded); this bound catches whatever those estimates do not model.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CompiledStats } from './compile.js';
import { POLICY_ISSUE, type PolicyIssue } from './errors.js';
import type { LoadedPolicy } from './load.js';

export interface BoundedLoadRequest {
  path: string;
  /** --policy-root; '' = the policy file's directory. */
  root: string;
  /** Accept the policy's testing section (--enable-test-stages). */
  allowTesting: boolean;
}

export type BoundedLoadReply =
  | { ok: true; policy: LoadedPolicy; issues: PolicyIssue[]; files: string[]; stats: CompiledStats }
  | { ok: false; issues: PolicyIssue[]; files: string[] };

export interface LoadBounds {
  timeoutMs: number;
  maxHeapMb: number;
}

/** dist/policy/load-worker.js, also when this module runs from src/ (tests load TypeScript sources). */
function workerUrl(): URL {
  const sibling = new URL('./load-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(sibling))) return sibling;
  return new URL('../../dist/policy/load-worker.js', import.meta.url);
}

function limitIssue(file: string, message: string): PolicyIssue {
  return { code: POLICY_ISSUE.LIMIT, severity: 'error', file, line: 0, col: 0, path: [], message, includedFrom: [] };
}

/** Loads `req.path` in a worker thread within `bounds`; never rejects. */
export function loadPolicyBounded(req: BoundedLoadRequest, bounds: LoadBounds): Promise<BoundedLoadReply> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: BoundedLoadReply): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(r);
    };
    const worker = new Worker(workerUrl(), {
      workerData: req,
      name: 'gwi-policy-load',
      // Plain JavaScript: none of the parent's loaders or flags (a test runner's TypeScript hooks, inspectors).
      execArgv: [],
      // The old generation is where a policy's data lives; V8 stops the worker (ERR_WORKER_OUT_OF_MEMORY) past it.
      resourceLimits: { maxOldGenerationSizeMb: bounds.maxHeapMb },
      stdout: false,
      stderr: false,
    });
    const timer = setTimeout(
      () => finish({ ok: false, files: [req.path], issues: [limitIssue(req.path, `loading the policy took longer than ${bounds.timeoutMs} ms (--policy-load-timeout-ms) and was stopped; the running policy stays`)] }),
      bounds.timeoutMs,
    );
    worker.once('message', (r: BoundedLoadReply) => finish(r));
    worker.once('error', (err: Error & { code?: string }) => {
      const message =
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? `loading the policy needed more than ${bounds.maxHeapMb} MiB of memory (--policy-load-max-mb) and was stopped; the running policy stays`
          : `the policy could not be loaded (an internal error; please report it): ${err.message}`;
      finish({ ok: false, files: [req.path], issues: [limitIssue(req.path, message)] });
    });
    worker.once('exit', (code) => finish({ ok: false, files: [req.path], issues: [limitIssue(req.path, `the policy loader exited (code ${code}) without a result`)] }));
  });
}
