/**
 * --test-faults: fault injection for tests of what cannot be made real from outside (a worker thread that stalls or
 * crashes: threads take no signals). Comma-separated WORKER:KIND:AFTER_MS[:DURATION_MS], e.g. "0:stall:1000:4000"
 * (worker 0 blocks for 4 s, 1 s after start) or "1:crash:1500". Empty, the default, in production.
 */
export interface TestFault {
  readonly worker: number;
  readonly kind: 'stall' | 'crash';
  readonly afterMs: number;
  readonly durationMs: number;
}

const FAULT = /^(\d{1,2}):(stall|crash):(\d{1,6})(?::(\d{1,6}))?$/;

/** Parses the spec; throws with the offending item when it does not parse. */
export function parseTestFaults(spec: string): TestFault[] {
  if (spec === '') return [];
  return spec.split(',').map((item) => {
    const m = FAULT.exec(item.trim());
    if (m === null) throw new Error(`not WORKER:stall|crash:AFTER_MS[:DURATION_MS]: ${JSON.stringify(item)}`);
    const kind = m[2] as 'stall' | 'crash';
    if (kind === 'stall' && m[4] === undefined) throw new Error(`a stall needs its duration: ${JSON.stringify(item)}`);
    return { worker: Number(m[1]), kind, afterMs: Number(m[3]), durationMs: Number(m[4] ?? 0) };
  });
}

export function isTestFaults(spec: string): boolean {
  try {
    parseTestFaults(spec);
    return true;
  } catch {
    return false;
  }
}
