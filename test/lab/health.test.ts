import t from 'tap';
import { GWLB_HEALTH_DEFAULTS, LAB_HEALTH_DEFAULTS, TargetHealth, healthSettingsProblems } from '../../src/lab/health.js';

t.test('GWLB defaults are the documented ones', async (t) => {
  t.equal(GWLB_HEALTH_DEFAULTS.protocol, 'tcp');
  t.equal(GWLB_HEALTH_DEFAULTS.intervalMs, 10_000);
  t.equal(GWLB_HEALTH_DEFAULTS.timeoutMs, 5_000);
  t.equal(GWLB_HEALTH_DEFAULTS.healthyThreshold, 5);
  t.equal(GWLB_HEALTH_DEFAULTS.unhealthyThreshold, 2);
  t.same(healthSettingsProblems(GWLB_HEALTH_DEFAULTS), []);
  t.same(healthSettingsProblems(LAB_HEALTH_DEFAULTS), []);
});

t.test('a new target is routable (initial) until its checks decide', async (t) => {
  const h = new TargetHealth(GWLB_HEALTH_DEFAULTS, 0);
  t.equal(h.state, 'initial');
  t.ok(h.routable);
});

t.test('UnhealthyThresholdCount consecutive failures take a target out; HealthyThresholdCount successes put it back', async (t) => {
  const h = new TargetHealth(GWLB_HEALTH_DEFAULTS, 0);
  let now = 0;
  const probe = (ok: boolean): boolean => {
    t.ok(h.due(now), `probe due at ${now}`);
    h.begin(now);
    now += 10_000;
    return h.record(ok, now - 9_000);
  };
  for (let i = 0; i < 5; i++) probe(true);
  t.equal(h.state, 'healthy');
  t.notOk(probe(false), 'one failure is not enough');
  t.equal(h.state, 'healthy');
  t.ok(probe(false), 'second consecutive failure changes the state');
  t.equal(h.state, 'unhealthy');
  t.notOk(h.routable);
  for (let i = 0; i < 4; i++) t.notOk(probe(true), `success ${i + 1} of 5 keeps it unhealthy`);
  t.notOk(h.routable);
  t.ok(probe(true), 'fifth consecutive success');
  t.equal(h.state, 'healthy');
});

t.test('a failure in between resets the success run', async (t) => {
  const h = new TargetHealth({ ...GWLB_HEALTH_DEFAULTS, healthyThreshold: 3, unhealthyThreshold: 2 }, 0);
  h.record(false, 1);
  h.record(false, 2);
  t.equal(h.state, 'unhealthy');
  h.record(true, 3);
  h.record(true, 4);
  h.record(false, 5);
  h.record(true, 6);
  h.record(true, 7);
  t.equal(h.state, 'unhealthy');
  h.record(true, 8);
  t.equal(h.state, 'healthy');
  t.equal(h.lastChangeAt, 8);
});

t.test('probes follow the interval and never overlap', async (t) => {
  const s = { ...LAB_HEALTH_DEFAULTS, intervalMs: 100, timeoutMs: 50 };
  const h = new TargetHealth(s, 1_000);
  t.ok(h.due(1_000), 'first probe at registration');
  h.begin(1_000);
  t.notOk(h.due(1_200), 'not while the previous probe runs');
  h.record(true, 1_201);
  t.ok(h.due(1_201), 'overdue probe starts as soon as the previous one finished');
  h.begin(1_201);
  h.record(true, 1_210);
  t.notOk(h.due(1_300));
  t.ok(h.due(1_301));
});

t.test('settings are validated', async (t) => {
  t.match(healthSettingsProblems({ ...GWLB_HEALTH_DEFAULTS, timeoutMs: 20_000 }), [/timeoutMs must be ≤ intervalMs/]);
  t.match(healthSettingsProblems({ ...GWLB_HEALTH_DEFAULTS, healthyThreshold: 0 }), [/healthyThreshold/]);
  t.match(healthSettingsProblems({ ...GWLB_HEALTH_DEFAULTS, protocol: 'http', path: 'healthz' }), [/path/]);
});
