/**
 * Worker-thread entry of bounded policy loading (bounded-load.ts): load, validate and trial-compile one policy,
 * post the plain-data result, exit. Runs under the time and heap limits its parent set, so a policy that would
 * take too long or too much memory to load or compile fails here and never reaches the data-plane workers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { compilePolicy } from './compile.js';
import { loadPolicy } from './load.js';
import type { BoundedLoadRequest, BoundedLoadReply } from './bounded-load.js';

const req = workerData as BoundedLoadRequest;
const loaded = loadPolicy(req.path, undefined, { ...(req.root === '' ? {} : { root: req.root }), testing: req.allowTesting ? 'allow' : 'error' });
let reply: BoundedLoadReply;
if (!loaded.ok) {
  reply = { ok: false, issues: loaded.issues, files: loaded.files };
} else {
  const compiled = compilePolicy(loaded.policy);
  reply = compiled.ok
    ? { ok: true, policy: loaded.policy, issues: loaded.issues, files: loaded.files, stats: { ...compiled.policy.stats } }
    : { ok: false, issues: compiled.issues, files: loaded.files };
}
parentPort?.postMessage(reply);
