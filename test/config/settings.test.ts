import t from 'tap';
import { readFileSync } from 'node:fs';
import { resolveSettings, SettingsError, envName, flagName } from '../../src/config/settings.js';
import { configurationMarkdown } from '../../src/config/doc.js';

t.test('defaults follow GWLB: port 6081, TCP idle 350 s, other idle 120 s, raw return path', async (t) => {
  const s = resolveSettings({}, {});
  t.equal(s.port, 6081);
  t.equal(s.flowIdleTcpS, 350);
  t.equal(s.flowIdleOtherS, 120);
  t.equal(s.returnMode, 'raw');
  t.ok(Object.isFrozen(s));
});

t.test('flags win over environment variables, which win over defaults', async (t) => {
  const env = { GWLB_INSPECTOR_WORKERS: '3', GWLB_INSPECTOR_MAX_FLOWS: '5000' };
  const s = resolveSettings({ workers: '2' }, env);
  t.equal(s.workers, 2);
  t.equal(s.maxFlows, 5000);
  t.equal(envName('maxHeldPacketsPerFlow'), 'GWLB_INSPECTOR_MAX_HELD_PACKETS_PER_FLOW');
  t.equal(flagName('maxHeldPacketsPerFlow'), 'max-held-packets-per-flow');
  t.equal(resolveSettings({}, {}).reevaluateOnReload, false, 'decided flows keep their verdict by default');
  t.equal(resolveSettings({ reevaluateOnReload: 'true' }, {}).reevaluateOnReload, true);
  t.equal(resolveSettings({}, { GWLB_INSPECTOR_REEVALUATE_ON_RELOAD: '0' }).reevaluateOnReload, false);
});

t.test('invalid values are rejected naming the flag or variable that carried them', async (t) => {
  t.throws(() => resolveSettings({ port: '70000' }, {}), SettingsError);
  try {
    resolveSettings({ returnMode: 'tcp' }, { GWLB_INSPECTOR_WORKERS: 'many' });
    t.fail('should throw');
  } catch (err) {
    const msg = (err as Error).message;
    t.match(msg, /--return-mode/);
    t.match(msg, /GWLB_INSPECTOR_WORKERS/);
  }
  t.throws(() => resolveSettings({ adminListen: 'localhost' }, {}), /--admin-listen/);
});

t.test('docs/configuration.md is generated from the schema and up to date', async (t) => {
  const committed = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  t.equal(committed, configurationMarkdown(), 'run: npm run build && node scripts/gen-config-doc.mjs');
});

t.test('admin listeners: stats default to loopback on another port; cross-setting rules are enforced', async (t) => {
  const s = resolveSettings({}, {});
  t.equal(s.adminListen, '0.0.0.0:8080', 'the health port GWLB configs point at is unchanged');
  t.equal(s.statsListen, '127.0.0.1:9090');
  t.equal(s.statsToken, '');
  t.throws(() => resolveSettings({ statsListen: '127.0.0.1:8080' }, {}), /--stats-listen: must use another port/);
  t.throws(() => resolveSettings({ adminHeadersTimeoutMs: '5000', adminRequestTimeoutMs: '1000' }, {}), /--admin-request-timeout-ms: must be ≥/);
  t.throws(() => resolveSettings({ adminMaxConnections: '0' }, {}), /--admin-max-connections/);
  t.throws(() => resolveSettings({}, { GWLB_INSPECTOR_STATS_TOKEN: 'short' }), /GWLB_INSPECTOR_STATS_TOKEN: at least 16/);
  t.throws(() => resolveSettings({ statsTokenFile: '/x' }, { GWLB_INSPECTOR_STATS_TOKEN: 'a'.repeat(20) }), /not both/);
  t.throws(() => resolveSettings({ adminListen: '127.0.0.1:70000' }, {}), /port above 65535/);
});
