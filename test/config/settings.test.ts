import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  MAX_FLOWS_LIMIT,
  MAX_HELD_BYTES_LIMIT,
  CONTENT_FLOW_BYTES,
  MAX_WORKERS,
  SETTINGS_SCHEMA,
  SettingsError,
  allowedValues,
  envName,
  flagName,
  formatBytes,
  resolveSettings,
  settingRange,
  worstCaseMemory,
} from '../../src/config/settings.js';
import { flowTableBytes } from '../../src/flow/table.js';
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

const GiB = 1024 ** 3;
const NAMES = Object.keys(SETTINGS_SCHEMA.shape);

t.test('every setting has a validated range or set of values, stated in words', async (t) => {
  for (const name of NAMES) {
    const inner = (SETTINGS_SCHEMA.shape as Record<string, { def: { innerType: { type: string } } }>)[name]!.def.innerType;
    if (inner.type === 'number') t.ok(settingRange(name), `${name}: numeric, so it has a range`);
    t.ok(allowedValues(name).length > 0, `${name}: allowed values are described`);
  }
  t.same(settingRange('maxFlows'), { min: 16, max: MAX_FLOWS_LIMIT, unit: 'flows' });
  t.ok(resolveSettings({}, {}).workers <= MAX_WORKERS, 'the default worker count is within range even on a big machine');
});

t.test('each numeric setting accepts its bounds and rejects one past them, naming flag, value, range and unit', async (t) => {
  for (const name of NAMES) {
    const r = settingRange(name);
    if (r === undefined) continue;
    const span = `${r.min.toLocaleString('en-US')} to ${r.max.toLocaleString('en-US')}`;
    for (const ok of [r.min, r.max]) {
      // One setting at its extreme, the others at defaults; memory is not what this test is about.
      // The request timeout must stay ≥ the headers timeout: move the other one out of the way.
      const other = name === 'adminHeadersTimeoutMs' ? { adminRequestTimeoutMs: '300000' } : name === 'adminRequestTimeoutMs' ? { adminHeadersTimeoutMs: '100' } : {};
      const s = resolveSettings({ workers: '2', ...other, [name]: String(ok) }, {}, Number.MAX_SAFE_INTEGER);
      t.equal((s as Record<string, unknown>)[name], ok, `${name} = ${ok} is accepted`);
    }
    for (const bad of [r.min - 1, r.max + 1]) {
      t.throws(
        () => resolveSettings({ [name]: String(bad) }, {}, Number.MAX_SAFE_INTEGER),
        { name: 'SettingsError', message: `--${flagName(name)}: "${bad}" is out of range; allowed: ${span}${r.unit === '' ? '' : ' ' + r.unit}${r.unit === 'bytes' ? ` (${formatBytes(r.max)} at most)` : ''}` },
        `${name} = ${bad} is refused`,
      );
    }
    t.throws(() => resolveSettings({}, { [envName(name)]: 'lots' }), { message: new RegExp(`^${envName(name)}: "lots" is not a number; allowed: `) });
  }
  t.throws(() => resolveSettings({ maxFlows: '1.5' }, {}), { message: '--max-flows: "1.5" is not a whole number; allowed: 16 to 8,000,000 flows' });
});

t.test('the largest flow table and hold budget are what the docs say they cost', async (t) => {
  // ~227 bytes per flow: 8,000,000 flows stay under 1.8 GiB (docs/configuration.md).
  t.ok(flowTableBytes(MAX_FLOWS_LIMIT) < 1.8 * GiB, `${formatBytes(flowTableBytes(MAX_FLOWS_LIMIT))} for ${MAX_FLOWS_LIMIT} flows`);
  t.ok(flowTableBytes(1_000_000) / 1_000_000 < 230);
  t.equal(MAX_HELD_BYTES_LIMIT, GiB);
});

t.test('bounds that together exceed the memory budget are refused with each part named', async (t) => {
  const s = resolveSettings({ workers: '2' }, {}, 8 * GiB);
  const need = worstCaseMemory(s);
  t.equal(need.total, need.flowTables + need.heldPackets + need.fragments + need.streams + need.socketBuffers + need.packetBuffers);
  t.equal(need.streams, 2 * (16_384 * CONTENT_FLOW_BYTES + 128 * 1024 * 1024), 'inspected flows and the stream memcap per worker');
  t.equal(need.fragments, 2 * (4 * 1024 * 1024 + 4096 * 64 * 16), "fragment memcap and tracker per worker");
  t.equal(need.heldPackets, 2 * 64 * 1024 * 1024, 'hold memcap per worker');
  t.ok(need.total < 1.5 * GiB, `defaults with 2 workers need ${formatBytes(need.total)} at worst`);
  // 64 workers × 1 GiB of holds alone is 64 GiB.
  t.throws(() => resolveSettings({ workers: '64', maxHeldBytes: String(GiB) }, {}, 32 * GiB), {
    name: 'SettingsError',
    message: /^settings need up to 8\d\.\d GiB in the worst case \(flow tables .*held packets 64 GiB = --max-held-bytes × --workers.*\) but 80 % of this machine's memory is 25\.6 GiB: lower --max-flows, --max-held-bytes, --stream-memcap-bytes, --content-max-flows, --socket-buffer-bytes or --workers$/,
  });
  t.throws(() => resolveSettings({ workers: '2' }, {}, 256 * 1024 * 1024), { message: /^settings need up to / }, 'a 256 MiB container cannot take the defaults');
  t.ok(
    resolveSettings(
      { workers: '2', maxFlows: '100000', maxHeldBytes: String(8 * 1024 * 1024), socketBufferBytes: String(1024 * 1024), streamMemcapBytes: String(16 * 1024 * 1024), contentMaxFlows: '2048' },
      {},
      256 * 1024 * 1024,
    ),
    'but smaller bounds fit it',
  );
});

t.test('admin listeners: stats default to loopback on another port; cross-setting rules are enforced', async (t) => {
  const s = resolveSettings({}, {});
  t.equal(s.adminListen, '0.0.0.0:8080', 'the health port GWLB configs point at is unchanged');
  t.equal(s.statsListen, '127.0.0.1:9090');
  t.equal(s.statsToken, '');
  t.throws(() => resolveSettings({ statsListen: '127.0.0.1:8080' }, {}), /--stats-listen: must use another port/);
  t.throws(() => resolveSettings({ adminHeadersTimeoutMs: '5000', adminRequestTimeoutMs: '1000' }, {}), /--admin-request-timeout-ms: must be ≥/);
  t.throws(() => resolveSettings({ adminMaxConnections: '0' }, {}), /--admin-max-connections/);
  t.throws(() => resolveSettings({}, { GWLB_INSPECTOR_STATS_TOKEN: 'short' }), /GWLB_INSPECTOR_STATS_TOKEN: "short" is not valid; allowed: empty, or at least 16 characters/);
  t.throws(() => resolveSettings({ statsTokenFile: '/x' }, { GWLB_INSPECTOR_STATS_TOKEN: 'a'.repeat(20) }), /not both/);
  t.throws(() => resolveSettings({ adminListen: '127.0.0.1:70000' }, {}), /^--admin-listen: "127\.0\.0\.1:70000" /);
});

t.test('every setting describes what it allows in its own words (regression: unions and refined strings fell back to the boolean text)', async (t) => {
  for (const name of Object.keys(SETTINGS_SCHEMA.shape)) {
    const text = allowedValues(name);
    t.notMatch(text, /\[object/, `${name}: ${text}`);
    const fallback = typeof (resolveSettings({}, {}) as Record<string, unknown>)[name] === 'boolean';
    if (!fallback) t.notMatch(text, /^true or false/, `${name} is not a boolean, so it does not say true or false`);
  }
});
