/**
 * Appliance metrics as CloudWatch Embedded Metric Format events in the verdict log (docs/operations.md, "Metrics"):
 * once per --metrics-interval-s, rates over the interval from the data plane's counters. In the CloudWatch Logs
 * group CloudWatch extracts them as metrics of namespace GwlbInspector with the dimension AutoScalingGroupName (the
 * Auto Scaling group of docker/cloudformation.yaml scales on PacketsPerSecond); on stdout they are one more JSON line.
 */
import { EMF_METRICS, EMF_NAMESPACE, type MetricsEvent } from './schema.js';

/** The counters the metrics are computed from (the totals of the supervisor's /stats). */
export interface MetricsSample {
  readonly atMs: number;
  readonly rxPackets: number;
  readonly rxBytes: number;
  readonly drops: number;
  readonly flowsActive: number;
  readonly heldBytes: number;
  readonly contentVerdicts: number;
}

type Unstamped = Omit<MetricsEvent, 'schemaVersion' | 'time' | 'timeMs' | 'applianceId' | 'policyVersion' | 'suppressed'>;

/** The metrics event for the interval from `prev` to `cur`; null when no time passed. */
export function metricsEvent(prev: MetricsSample, cur: MetricsSample, autoScalingGroup: string | null): Unstamped | null {
  const s = (cur.atMs - prev.atMs) / 1000;
  if (!(s > 0)) return null;
  // Counters only grow, except after a worker restart (its counters start again): a negative delta counts as 0.
  const rate = (a: number, b: number): number => Math.max(0, b - a) / s;
  const dims = autoScalingGroup === null ? [] : ['AutoScalingGroupName' as const];
  return {
    kind: 'metrics',
    _aws: {
      Timestamp: Math.floor(cur.atMs),
      CloudWatchMetrics: [{ Namespace: EMF_NAMESPACE, Dimensions: [dims], Metrics: EMF_METRICS.map(([Name, Unit]) => ({ Name, Unit })) }],
    },
    ...(autoScalingGroup === null ? {} : { AutoScalingGroupName: autoScalingGroup }),
    intervalS: Math.round(s * 1000) / 1000,
    PacketsPerSecond: rate(prev.rxPackets, cur.rxPackets),
    BytesPerSecond: rate(prev.rxBytes, cur.rxBytes),
    DropsPerSecond: rate(prev.drops, cur.drops),
    FlowsActive: cur.flowsActive,
    HeldBytes: cur.heldBytes,
    ContentVerdictsPerSecond: rate(prev.contentVerdicts, cur.contentVerdicts),
  };
}

/** A sample from the supervisor's /stats totals. */
export function sampleOf(stats: Record<string, unknown>, atMs: number): MetricsSample {
  const num = (k: string): number => (typeof stats[k] === 'number' ? stats[k]! : 0);
  const drops = stats['drops'];
  let dropped = 0;
  if (drops !== null && typeof drops === 'object') for (const v of Object.values(drops as Record<string, unknown>)) if (typeof v === 'number') dropped += v;
  return {
    atMs,
    rxPackets: num('rx_packets'),
    rxBytes: num('rx_bytes'),
    drops: dropped,
    flowsActive: num('flows_active'),
    heldBytes: num('held_bytes_now'),
    contentVerdicts: num('content_verdict_drop') + num('content_verdict_reject'),
  };
}
