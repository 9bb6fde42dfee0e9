/**
 * Per-key rate limits and sampling for the verdict log, with exact counters.
 *
 * A key names what is being logged (`flow_verdict|firewall|ssh-from-anywhere-else`): a flood of drops by one rule
 * spends that rule's budget only. Each key has a token bucket (`ratePerS` events per second, burst one second's
 * worth, at least one event) and, for the high-volume kinds, a 1-in-N sampler (the first event of every N is kept,
 * so the counts stay exact and a test can predict them). Whatever is left out is counted per key and in total, and
 * the next written event of the key reports how many in `suppressed`.
 *
 * The key table is bounded (MAX_LIMITER_KEYS): past it, new keys share one overflow key. This runs on the main
 * thread for events the data plane chose to log, never per packet.
 */

/** Keys tracked one by one; later keys share OVERFLOW_KEY (one bucket), so memory stays bounded. */
export const MAX_LIMITER_KEYS = 4096;
export const OVERFLOW_KEY = '(overflow)';

export interface LimiterOptions {
  /** Events per second per key (token bucket rate; burst = max(1, ratePerS)). */
  ratePerS: number;
  /** Keep 1 of every N sampled events per key (1 keeps all). */
  sampleEvery: number;
}

export type LimitDecision = 'write' | 'rate_limited' | 'sampled_out';

interface KeyState {
  tokens: number;
  lastMs: number;
  /** Sampled events seen, for the 1-in-N choice. */
  sampleSeen: number;
  /** Left out since the last written event. */
  pending: number;
  written: number;
  rateLimited: number;
  sampledOut: number;
}

export interface KeyCounts {
  key: string;
  written: number;
  rateLimited: number;
  sampledOut: number;
}

export class LogLimiter {
  private readonly keys = new Map<string, KeyState>();
  private readonly burst: number;
  written = 0;
  rateLimited = 0;
  sampledOut = 0;

  constructor(private readonly options: LimiterOptions) {
    if (!(options.ratePerS > 0)) throw new RangeError('ratePerS must be > 0');
    if (!Number.isInteger(options.sampleEvery) || options.sampleEvery < 1) throw new RangeError('sampleEvery must be an integer ≥ 1');
    this.burst = Math.max(1, options.ratePerS);
  }

  /**
   * Decides one event of `key` at monotonic time `nowMs`. `sampled` says whether the event's kind is subject to
   * sampling. The caller writes the event only on 'write', with `suppressed` = takeSuppressed(key).
   */
  decide(key: string, sampled: boolean, nowMs: number): LimitDecision {
    const s = this.state(key, nowMs);
    if (sampled && this.options.sampleEvery > 1) {
      const n = s.sampleSeen;
      s.sampleSeen = n + 1 === this.options.sampleEvery ? 0 : n + 1;
      if (n !== 0) {
        s.sampledOut++;
        s.pending++;
        this.sampledOut++;
        return 'sampled_out';
      }
    }
    s.tokens = Math.min(this.burst, s.tokens + ((nowMs - s.lastMs) * this.options.ratePerS) / 1000);
    s.lastMs = nowMs;
    if (s.tokens < 1) {
      s.rateLimited++;
      s.pending++;
      this.rateLimited++;
      return 'rate_limited';
    }
    s.tokens -= 1;
    s.written++;
    this.written++;
    return 'write';
  }

  /** Events of `key` left out since its previous written event; resets the count. */
  takeSuppressed(key: string): number {
    const s = this.keys.get(key) ?? this.keys.get(OVERFLOW_KEY);
    if (s === undefined) return 0;
    const n = s.pending;
    s.pending = 0;
    return n;
  }

  /** Per-key counters (at most MAX_LIMITER_KEYS + 1 rows). */
  counts(): KeyCounts[] {
    return [...this.keys].map(([key, s]) => ({ key, written: s.written, rateLimited: s.rateLimited, sampledOut: s.sampledOut }));
  }

  private state(key: string, nowMs: number): KeyState {
    let s = this.keys.get(key);
    if (s !== undefined) return s;
    if (this.keys.size >= MAX_LIMITER_KEYS) {
      s = this.keys.get(OVERFLOW_KEY);
      if (s !== undefined) return s;
      key = OVERFLOW_KEY;
    }
    s = { tokens: this.burst, lastMs: nowMs, sampleSeen: 0, pending: 0, written: 0, rateLimited: 0, sampledOut: 0 };
    this.keys.set(key, s);
    return s;
  }
}
