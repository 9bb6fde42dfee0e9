/**
 * /healthz decision rules: 503 with the reason whenever a worker is not running or its data-path self-test
 * has not succeeded recently, or no policy is loaded. (The 200 path is exercised end to end against the real
 * appliance in test/dataplane/appliance.test.ts.)
 */
import t from 'tap';
import { evaluateHealth, startHealthServer, startStatsServer, type HealthSources } from '../../src/admin/server.js';
import type { Supervisor } from '../../src/dataplane/supervisor.js';
import type { SelfTest } from '../../src/admin/self-test.js';
import type { StageHealth } from '../../src/pipeline/content.js';

function sources(o: { alive: boolean[]; lastOk: number[]; policy?: boolean; stages?: Record<string, StageHealth> }): HealthSources {
  const supervisor = { workerCount: o.alive.length, workerAlive: (i: number) => o.alive[i] === true, stats: () => ({ rx_packets: 5, drops: { geneve_too_short: 2 }, workers: [] }), stageHealth: () => o.stages ?? {} } as unknown as Supervisor;
  const selfTest = { lastOkMs: o.lastOk, sent: 1, received: 1, mismatched: 0 } as unknown as SelfTest;
  return { supervisor, selfTest, healthMaxAgeMs: 3000, policyLoaded: () => o.policy ?? true };
}

t.test('healthy only when every worker runs and passed its self-test recently', async (t) => {
  const now = Date.now();
  t.same(evaluateHealth(sources({ alive: [true, true], lastOk: [now, now] })), { healthy: true, reasons: [], degraded: [] });
  const stale = evaluateHealth(sources({ alive: [true, true], lastOk: [now, now - 10_000] }));
  t.equal(stale.healthy, false);
  t.match(stale.reasons[0], /worker 1 data-path self-test failed/);
  const dead = evaluateHealth(sources({ alive: [false, true], lastOk: [now, now] }));
  t.match(dead.reasons, [/worker 0 not running/]);
  const never = evaluateHealth(sources({ alive: [true], lastOk: [0] }));
  t.match(never.reasons[0], /last success never/);
  t.match(evaluateHealth(sources({ alive: [true], lastOk: [now], policy: false })).reasons, ['no policy loaded']);
});

t.test('a content stage that is down makes the appliance unhealthy; a degraded one (fail-open) is healthy and said', async (t) => {
  const now = Date.now();
  const down = evaluateHealth(sources({ alive: [true], lastOk: [now], stages: { antivirus: { state: 'down', detail: 'clamd unreachable, fail-closed' } } }));
  t.same(down, { healthy: false, reasons: ['stage antivirus down: clamd unreachable, fail-closed'], degraded: [] });
  const degraded = evaluateHealth(sources({ alive: [true], lastOk: [now], stages: { antivirus: { state: 'degraded', detail: 'clamd unreachable, fail-open' } } }));
  t.same(degraded, { healthy: true, reasons: [], degraded: ['stage antivirus degraded: clamd unreachable, fail-open'] });
  t.same(evaluateHealth(sources({ alive: [true], lastOk: [now], stages: { antivirus: { state: 'up', detail: 'canary detected' } } })).degraded, []);
});

const LIMITS = { headersTimeoutMs: 1000, requestTimeoutMs: 1000, keepAliveTimeoutMs: 1000, idleTimeoutMs: 5000, maxConnections: 16 };

t.test('the health listener answers 503 with reasons and 404s everything else; the stats listener serves Prometheus text', async (t) => {
  const h = sources({ alive: [true], lastOk: [0] });
  const health = await startHealthServer('127.0.0.1', 0, LIMITS, h);
  const stats = await startStatsServer('127.0.0.1', 0, LIMITS, '', h);
  t.teardown(() => {
    health.close();
    stats.close();
  });
  const base = `http://127.0.0.1:${(health.server.address() as { port: number }).port}`;
  const statsBase = `http://127.0.0.1:${(stats.server.address() as { port: number }).port}`;
  const r = await fetch(`${base}/healthz`);
  t.equal(r.status, 503);
  t.match(await r.json(), { status: 'unhealthy', reasons: [/self-test/] });
  const m = await fetch(`${statsBase}/metrics`);
  const text = await m.text();
  t.match(text, /gwlb_inspector_rx_packets 5/);
  t.match(text, /gwlb_inspector_drops\{reason="geneve_too_short"\} 2/);
  t.equal((await fetch(`${base}/metrics`)).status, 404);
  t.equal((await fetch(`${base}/nope`)).status, 404);
  t.equal((await fetch(`${base}/healthz`, { method: 'POST', body: 'x' })).status, 405);
});
