/**
 * The scanner canary: a scan of the built-in EICAR test object through the same adapter, at start and then
 * periodically. PING proves clamd answers; only a detection proves it scans with a loaded database.
 *
 *   up        the last check detected the test object
 *   degraded  it was up, and fewer than downAfterFailures checks in a row have failed since
 *   down      no check has detected the test object yet, downAfterFailures checks in a row failed, or clamd
 *             answered "clean" for the test object (it is not scanning with our signatures or the official ones)
 *
 * A check that ends not_scanned(overloaded) says nothing about clamd (our own pool was full): it changes nothing.
 * The admin health endpoint maps these states per fail mode (fail-closed: only `up` is healthy).
 */
import type { ClamdScanner } from './clamd.js';
import { eicarTestObject } from './eicar.js';
import type { ScanResult } from './result.js';

export const CANARY_STATES = ['up', 'degraded', 'down'] as const;
export type CanaryState = (typeof CANARY_STATES)[number];

/** Periodic check interval. */
export const CANARY_INTERVAL_MS = 30_000;
/** Failed checks in a row that take an `up` scanner to `down` (the ones before it report `degraded`). */
export const CANARY_DOWN_AFTER_FAILURES = 2;

export interface CanaryStatus {
  readonly state: CanaryState;
  /** Why the state is not `up` (the last check's outcome), or the signature that detected the test object. */
  readonly reason: string;
  /** Date.now() of the last state change / last finished check (0: none yet). */
  readonly sinceMs: number;
  readonly lastCheckMs: number;
  readonly consecutiveFailures: number;
  /** clamd's VERSION line, read when the canary goes up ('' until then). */
  readonly version: string;
  readonly checks: number;
  readonly detected: number;
  readonly failures: number;
  /** Checks that ended overloaded and changed nothing. */
  readonly inconclusive: number;
}

export interface CanaryOptions {
  readonly intervalMs: number;
  readonly downAfterFailures: number;
}

export class ClamdCanary {
  private state: CanaryState = 'down';
  private reason = 'no check yet';
  private sinceMs = Date.now();
  private lastCheckMs = 0;
  private consecutiveFailures = 0;
  private version = '';
  private checks = 0;
  private detected = 0;
  private failures = 0;
  private inconclusive = 0;
  private running: Promise<CanaryStatus> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly options: CanaryOptions;

  constructor(
    private readonly scanner: ClamdScanner,
    options: Partial<CanaryOptions> = {},
    /** Called on every state change (for the operational log and health). */
    private readonly onChange: (status: CanaryStatus, previous: CanaryState) => void = () => {},
  ) {
    this.options = { intervalMs: CANARY_INTERVAL_MS, downAfterFailures: CANARY_DOWN_AFTER_FAILURES, ...options };
  }

  status(): CanaryStatus {
    return {
      state: this.state,
      reason: this.reason,
      sinceMs: this.sinceMs,
      lastCheckMs: this.lastCheckMs,
      consecutiveFailures: this.consecutiveFailures,
      version: this.version,
      checks: this.checks,
      detected: this.detected,
      failures: this.failures,
      inconclusive: this.inconclusive,
    };
  }

  /** Runs one check now (joins the running one if any) and resolves with the status after it. */
  check(): Promise<CanaryStatus> {
    if (this.running === null) {
      this.running = this.runCheck().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  /** A check now, then one every intervalMs (never two at once). The timer does not keep the process alive. */
  start(): void {
    if (this.timer !== null) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async runCheck(): Promise<CanaryStatus> {
    const scan = this.scanner.begin();
    scan.write(eicarTestObject());
    const result = await scan.end();
    this.checks++;
    this.lastCheckMs = Date.now();
    if (result.kind === 'not_scanned' && result.reason === 'overloaded') {
      this.inconclusive++;
      return this.status();
    }
    if (result.kind === 'infected') {
      this.detected++;
      this.consecutiveFailures = 0;
      if (this.state !== 'up') this.version = await this.scanner.version().catch(() => '');
      this.transition('up', result.signature);
      return this.status();
    }
    this.failures++;
    this.consecutiveFailures++;
    const why = describe(result);
    if (result.kind === 'clean') this.transition('down', why);
    else if (this.state === 'down' || this.consecutiveFailures >= this.options.downAfterFailures) this.transition('down', why);
    else this.transition('degraded', why);
    return this.status();
  }

  private transition(next: CanaryState, reason: string): void {
    const previous = this.state;
    this.reason = reason;
    if (next === previous) return;
    this.state = next;
    this.sinceMs = Date.now();
    this.onChange(this.status(), previous);
  }
}

function describe(r: ScanResult): string {
  if (r.kind === 'clean') return 'clamd answered clean for the EICAR test object: no detecting database';
  if (r.kind === 'infected') return r.signature;
  return `${r.reason}: ${r.detail}`;
}
