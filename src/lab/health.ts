/**
 * GWLB target health, as the AWS Gateway Load Balancer user guide ("Health checks for Gateway Load Balancer
 * target groups") describes it:
 *
 * - Protocol TCP (default), HTTP or HTTPS; port default 80; HTTP path default "/"; a check succeeds on an HTTP
 *   status within the matcher (200-399).
 * - HealthCheckTimeoutSeconds (2-120, default 5): no response within it is a failed check.
 * - HealthCheckIntervalSeconds (5-300, default 10): approximate time between checks of one target.
 * - UnhealthyThresholdCount (2-10, default 2) consecutive failures take a target out of service;
 *   HealthyThresholdCount (2-10, default 5) consecutive successes put it back.
 * - "Your Gateway Load Balancer starts routing requests to a newly registered target as soon as the registration
 *   process completes": a target in the `initial` state receives new flows until its checks say otherwise.
 *
 * The state machine is pure (no timers, no I/O) so tests drive it with an injected clock; src/lab/emulator-main.ts
 * runs the probes.
 */

export type HealthProtocol = 'tcp' | 'http';
export type TargetState = 'initial' | 'healthy' | 'unhealthy';

export interface HealthCheckSettings {
  protocol: HealthProtocol;
  /** HTTP path (http only). */
  path: string;
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** Inclusive HTTP status range counted as success (http only). */
  matcherLow: number;
  matcherHigh: number;
}

/** What GWLB does when nobody configures anything (AWS docs, see the file comment). */
export const GWLB_HEALTH_DEFAULTS: Readonly<HealthCheckSettings> = Object.freeze({
  protocol: 'tcp',
  path: '/',
  intervalMs: 10_000, // 10 s
  timeoutMs: 5_000, // 5 s
  healthyThreshold: 5,
  unhealthyThreshold: 2,
  matcherLow: 200,
  matcherHigh: 399,
});

/**
 * The lab's defaults: same state machine, faster clock, so failover tests finish in about a second. Probes the
 * appliance's health endpoint over HTTP, which (unlike a bare TCP connect) reflects the data path.
 */
export const LAB_HEALTH_DEFAULTS: Readonly<HealthCheckSettings> = Object.freeze({
  protocol: 'http',
  path: '/healthz',
  intervalMs: 200, // 0.2 s
  timeoutMs: 150, // 0.15 s
  healthyThreshold: 2,
  unhealthyThreshold: 2,
  matcherLow: 200,
  matcherHigh: 399,
});

/** Validates settings (GWLB's own ranges are not enforced: the lab runs faster on purpose). Returns problems. */
export function healthSettingsProblems(s: HealthCheckSettings): string[] {
  const problems: string[] = [];
  if (!(s.intervalMs > 0)) problems.push('intervalMs must be > 0');
  if (!(s.timeoutMs > 0)) problems.push('timeoutMs must be > 0');
  if (s.timeoutMs > s.intervalMs) problems.push('timeoutMs must be ≤ intervalMs (GWLB: interval ≥ timeout)');
  if (!Number.isInteger(s.healthyThreshold) || s.healthyThreshold < 1) problems.push('healthyThreshold must be an integer ≥ 1');
  if (!Number.isInteger(s.unhealthyThreshold) || s.unhealthyThreshold < 1) problems.push('unhealthyThreshold must be an integer ≥ 1');
  if (s.protocol === 'http' && !s.path.startsWith('/')) problems.push('path must start with /');
  if (s.matcherLow > s.matcherHigh) problems.push('matcherLow must be ≤ matcherHigh');
  return problems;
}

/** Health of one target: consecutive results and the state they imply. */
export class TargetHealth {
  state: TargetState = 'initial';
  consecutiveOk = 0;
  consecutiveFail = 0;
  /** Clock value (ms) at which the next probe is due. */
  nextProbeAt: number;
  /** A probe is running: no second one starts before it finishes (or times out). */
  probing = false;
  probes = 0;
  failures = 0;
  lastChangeAt: number;
  lastError = '';

  constructor(
    private readonly settings: Readonly<HealthCheckSettings>,
    now: number,
  ) {
    this.nextProbeAt = now;
    this.lastChangeAt = now;
  }

  /** True when a probe should start at `now`. */
  due(now: number): boolean {
    return !this.probing && now >= this.nextProbeAt;
  }

  /** A probe starts at `now`; the next one is scheduled one interval later. */
  begin(now: number): void {
    this.probing = true;
    this.nextProbeAt = now + this.settings.intervalMs;
  }

  /** Records a finished probe; returns true when the state changed. */
  record(ok: boolean, now: number, error = ''): boolean {
    this.probing = false;
    this.probes++;
    const before = this.state;
    if (ok) {
      this.consecutiveOk++;
      this.consecutiveFail = 0;
      this.lastError = '';
      if (this.state !== 'healthy' && this.consecutiveOk >= this.settings.healthyThreshold) this.state = 'healthy';
    } else {
      this.failures++;
      this.consecutiveFail++;
      this.consecutiveOk = 0;
      this.lastError = error;
      if (this.state !== 'unhealthy' && this.consecutiveFail >= this.settings.unhealthyThreshold) this.state = 'unhealthy';
    }
    if (this.state !== before) this.lastChangeAt = now;
    return this.state !== before;
  }

  /** New flows may go here: healthy, or initial (GWLB routes to a target as soon as it is registered). */
  get routable(): boolean {
    return this.state !== 'unhealthy';
  }
}
