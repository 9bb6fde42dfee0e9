/**
 * Appliance metrics in CloudWatch Embedded Metric Format (src/log/emf.ts, docs/operations.md "Metrics"): the rates
 * are right, the events are schema-valid EMF (every metric the directive names is a top-level number), and the
 * running appliance writes them to its verdict log at --metrics-interval-s.
 */
import t from 'tap';
import { metricsEvent, sampleOf, type MetricsSample } from '../../src/log/emf.js';
import { EMF_METRICS, EMF_NAMESPACE, LogEventSchema, timeFields } from '../../src/log/schema.js';
import { startAppliance, randomLoopback, randomPort } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const sample = (atMs: number, k: number): MetricsSample => ({ atMs, rxPackets: 1000 * k, rxBytes: 1_500_000 * k, drops: 10 * k, flowsActive: 7, heldBytes: 512, contentVerdicts: 2 * k });
const stamp = (e: object) => ({ ...e, ...timeFields(Date.now()), applianceId: 'i-0123456789abcdef0', policyVersion: '3', suppressed: 0 });

t.test('rates over the interval, gauges as they are, EMF directive naming every metric', async (t) => {
  const e = metricsEvent(sample(10_000, 1), sample(12_000, 3), 'gwlb-appliances');
  if (e === null) throw new Error('no event');
  t.equal(e.intervalS, 2);
  t.equal(e.PacketsPerSecond, 1000);
  t.equal(e.BytesPerSecond, 1_500_000);
  t.equal(e.DropsPerSecond, 10);
  t.equal(e.ContentVerdictsPerSecond, 2);
  t.equal(e.FlowsActive, 7);
  t.equal(e.HeldBytes, 512);
  t.equal(e.AutoScalingGroupName, 'gwlb-appliances');
  const d = e._aws.CloudWatchMetrics[0];
  t.equal(d?.Namespace, EMF_NAMESPACE);
  t.same(d?.Dimensions, [['AutoScalingGroupName']]);
  for (const [name, unit] of EMF_METRICS) {
    t.ok(d?.Metrics.some((m) => m.Name === name && m.Unit === unit), `${name} declared`);
    t.type((e as unknown as Record<string, unknown>)[name], 'number', `${name} is a top-level number`);
  }
  t.ok(LogEventSchema.safeParse(stamp(e)).success, 'a valid log event');
});

t.test('off EC2 (no group): no dimension; a restarted worker (counters back at 0) gives 0, not a negative rate', async (t) => {
  const e = metricsEvent(sample(0, 5), sample(1000, 1), null);
  if (e === null) throw new Error('no event');
  t.same(e._aws.CloudWatchMetrics[0]?.Dimensions, [[]]);
  t.notOk('AutoScalingGroupName' in e);
  t.equal(e.PacketsPerSecond, 0);
  t.ok(LogEventSchema.safeParse(stamp(e)).success);
  t.equal(metricsEvent(sample(5, 1), sample(5, 2), null), null, 'no time passed: no event');
});

t.test('sampleOf reads the totals of /stats (drops summed over reasons)', async (t) => {
  const s = sampleOf({ rx_packets: 5, rx_bytes: 700, flows_active: 3, held_bytes_now: 9, content_verdict_drop: 1, content_verdict_reject: 2, drops: { a: 4, b: 6 } }, 42);
  t.same(s, { atMs: 42, rxPackets: 5, rxBytes: 700, drops: 10, flowsActive: 3, heldBytes: 9, contentVerdicts: 3 });
});

t.test('the running appliance writes EMF metrics to its verdict log every --metrics-interval-s', async (t) => {
  const app = await startAppliance(['--listen', randomLoopback(), '--port', String(randomPort()), '--admin-listen', '127.0.0.1:0', '--workers', '1', '--health-interval-ms', '100', '--metrics-interval-s', '1', '--policy', 'policies/default.yaml']);
  t.teardown(() => app.stop());
  const metrics = () => app.stdout.filter((l) => l.includes('"kind":"metrics"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  // The health self-test's probes are received datagrams: the packet rate is above zero without other traffic.
  await waitFor(() => metrics().some((m) => (m['PacketsPerSecond'] as number) > 0), 15_000, 'a metrics event with packets');
  const m = metrics().find((x) => (x['PacketsPerSecond'] as number) > 0) as Record<string, unknown>;
  t.ok(LogEventSchema.safeParse(m).success, 'schema-valid as written');
  t.equal((m['_aws'] as { CloudWatchMetrics: { Namespace: string }[] }).CloudWatchMetrics[0]?.Namespace, 'GwlbInspector');
  t.ok(Math.abs((m['intervalS'] as number) - 1) < 0.5, `about one second per interval (${String(m['intervalS'])})`);
});
