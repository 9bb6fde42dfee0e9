/**
 * What the firewall tells the verdict log, and how often.
 *
 * The stage calls its `onLog` hook (supplied by the data plane; a no-op by default) for decisions of rules that log
 * (drop, reject and alert by default; pass when the rule says `log: true`), for default actions that log, and for
 * exception-policy events. Each rule has a token bucket (`log.max_per_s`, burst = one second's worth); events over
 * the rate are counted, and the next event of that rule carries the count in `suppressed`.
 *
 * Events are built only when they will be emitted: off the per-packet path.
 */

/** Stable reason codes (ctx.reason and FirewallLogEvent.reason). */
export const REASON = {
  /** A rule matched. */
  RULE: 'firewall.rule',
  /** No rule matched: the scope's default action. */
  DEFAULT: 'firewall.default',
  /** Later packet of a flow already decided. */
  CACHED: 'firewall.cached',
  /** The rule needed a TLS SNI / HTTP Host and none could be read: settings.names.on_unreadable. */
  NAME_UNREADABLE: 'firewall.name_unreadable',
  /** Too many flows waiting for a name: settings.names.on_memcap. */
  NAME_MEMCAP: 'firewall.name_memcap',
  /** TCP packet invalid for the tracked state: settings.tcp.on_invalid. */
  TCP_INVALID: 'firewall.tcp_invalid',
  /** TCP flow first seen mid-connection with pickup off: settings.tcp.on_midstream. */
  TCP_MIDSTREAM: 'firewall.tcp_midstream',
  /** TCP packet without a known flow whose own reading (sender = client) is denied: dropped, nothing cached. */
  MIDSTREAM_DENIED: 'firewall.midstream_denied',
  /** A rule needed a name on a flow picked up mid-stream (start unknown): settings.names.on_unknown. */
  NAME_UNKNOWN: 'firewall.name_unknown',
  /** The client bytes a name is read from are ambiguous: settings.names.on_anomaly. */
  STREAM_ANOMALY: 'firewall.stream_anomaly',
} as const;
export type Reason = (typeof REASON)[keyof typeof REASON];

export interface FirewallLogEvent {
  stage: 'firewall';
  /** pass | drop | reject | alert (ACTION_NAMES). */
  action: string;
  reason: Reason;
  /** Rule name; null for a default action or an exception policy. */
  rule: string | null;
  /** Global rule id (CompiledPolicy.rules index); -1 when no rule. */
  ruleId: number;
  /** file:line:column of the rule, or of the scope for a default action. */
  ruleSource: string | null;
  scope: string;
  flow: number;
  /** Addresses and ports as the client (initiator) sent them; formatted text. */
  proto: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** GWLB endpoint id (vpce-…) the flow came through, null when the packet carried none. */
  endpointId: string | null;
  /** TLS SNI or HTTP Host read for this flow, when one was. */
  serverName: string | null;
  /** 'tls' | 'http' | null */
  serverNameSource: string | null;
  /** Monotonic ms of the decision (PacketContext.nowMs). */
  nowMs: number;
  /** Events of the same rule (or exception kind) dropped by the rate limit since the previous one emitted. */
  suppressed: number;
}

export type LogHook = (event: FirewallLogEvent) => void;

/** Token buckets by key (rule id, or one key per exception kind). */
export class LogLimiter {
  private tokens: Float64Array;
  private last: Float64Array;
  private suppressedCount: Float64Array;
  private rates: Float64Array;

  constructor(rates: ArrayLike<number>) {
    const n = rates.length;
    this.rates = Float64Array.from(rates);
    // Burst: one second's worth, and at least one event (so rates below 1/s still log).
    this.tokens = Float64Array.from(rates, (r) => (r > 0 ? Math.max(1, r) : 0));
    this.last = new Float64Array(n).fill(-1);
    this.suppressedCount = new Float64Array(n);
  }

  /** True when an event for `key` may be emitted at nowMs; otherwise counts it as suppressed. */
  take(key: number, nowMs: number): boolean {
    const rate = this.rates[key]!;
    if (rate <= 0) return false;
    const last = this.last[key]!;
    let t = this.tokens[key]!;
    if (last >= 0) t = Math.min(Math.max(1, rate), t + ((nowMs - last) * rate) / 1000);
    this.last[key] = nowMs;
    if (t >= 1) {
      this.tokens[key] = t - 1;
      return true;
    }
    this.tokens[key] = t;
    this.suppressedCount[key] = this.suppressedCount[key]! + 1;
    return false;
  }

  /** Suppressed count since the last emitted event of `key`, and reset it. */
  drain(key: number): number {
    const n = this.suppressedCount[key]!;
    this.suppressedCount[key] = 0;
    return n;
  }
}
