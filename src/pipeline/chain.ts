/**
 * A worker's service chain, built from the policy the main thread validated. The main thread posts the loaded
 * policy (plain data: every file's text and the parsed document, includes resolved); each worker compiles its own
 * matchers from it (compiled matchers hold typed arrays and closures that cannot cross threads), completely,
 * before the swap. Stages are created once and keep their per-flow state across reloads; a reload swaps the
 * compiled policy inside them between two batches.
 */
import type { Stage } from './stage.js';
import { FirewallStage } from '../firewall/stage.js';
import { compilePolicy } from '../policy/compile.js';
import { writeReject } from '../packet/reject.js';
import type { LoadedPolicy } from '../policy/load.js';
import type { RejectBuilder } from '../dataplane/engine.js';

export interface ChainFactoryInput {
  /** Increments on each successful load; visible in /stats per worker. */
  generation: number;
  /** The loaded policy, or null for the built-in pass-everything chain (tests, benches). */
  document: LoadedPolicy | null;
  /** Re-decide flows the firewall decided under the previous policy (default: they keep their verdict). */
  reevaluate?: boolean;
}

export class Chain {
  stages: Stage[] = [];
  readonly rejectBuilder: RejectBuilder = writeReject;
  private firewall: FirewallStage | undefined;
  private readonly onLog: (event: unknown) => void;

  constructor(input: ChainFactoryInput, onLog: (event: unknown) => void) {
    this.onLog = onLog;
    this.apply(input);
  }

  /** Compiles the new policy completely, then swaps it in. Throws (leaving the old one) if it does not compile. */
  apply(input: ChainFactoryInput): void {
    if (input.document === null) {
      this.stages = [];
      return;
    }
    const compiled = compilePolicy(input.document);
    if (!compiled.ok) throw new Error(`policy generation ${input.generation} does not compile: ${compiled.issues.length} issues`);
    if (this.firewall === undefined) this.firewall = new FirewallStage(compiled.policy, { onLog: this.onLog });
    else this.firewall.setPolicy(compiled.policy, { reevaluate: input.reevaluate === true });
    this.stages = [this.firewall];
  }
}

