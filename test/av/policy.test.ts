import t from 'tap';
import {
  AntivirusScopeSchema,
  AntivirusSectionSchema,
  antivirusDefaults,
  contentTypeSkipped,
  effectiveAntivirus,
  hostName,
  hostSkipped,
  type AntivirusScopeSection,
} from '../../src/av/policy.js';
import { antivirusEnabled, antivirusStageConfig, failModeFor } from '../../src/av/stage.js';
import { PolicySchema } from '../../src/policy/schema.js';

t.test('defaults: disabled, block, reject, both directions, any port, 20 MiB, fail open only for oversize', async (t) => {
  t.same(antivirusDefaults(), {
    enabled: false,
    mode: 'block',
    action: 'reject',
    directions: ['to_server', 'to_client'],
    ports: 'any',
    max_object_bytes: 20 * 1024 * 1024,
    hold_budget_ms: 15_000,
    hold_budget_bytes: 4 * 1024 * 1024,
    on_oversize: 'open',
    on_timeout: 'closed',
    on_scanner_error: 'closed',
    on_incomplete: 'closed',
    skip_content_types: [],
    skip_domains: [],
  });
});

t.test('strict: unknown keys, bad values and hold budgets in a scope are refused', async (t) => {
  const bad: [string, unknown][] = [
    ['unknown key', { enabled: true, scan_zip: true }],
    ['mode', { mode: 'log' }],
    ['action', { action: 'alert' }],
    ['no direction', { directions: [] }],
    ['port 0', { ports: [0] }],
    ['size 0', { max_object_bytes: 0 }],
    ['size over 1 GiB', { max_object_bytes: 2 * 1024 * 1024 * 1024 }],
    ['fail mode', { on_timeout: 'pass' }],
    ['content type with a space', { skip_content_types: ['text /html'] }],
    ['domain with a path', { skip_domains: ['example.com/x'] }],
    ['wildcard in the middle', { skip_domains: ['a.*.example.com'] }],
  ];
  for (const [name, v] of bad) t.notOk(AntivirusSectionSchema.safeParse(v).success, name);
  t.notOk(AntivirusScopeSchema.safeParse({ hold_budget_ms: 10 }).success, 'hold budgets are top level only');
  t.same(AntivirusScopeSchema.parse({}), {}, 'a scope sets only what it overrides');
});

t.test('a policy file carries the section at the top and per scope', async (t) => {
  const p = PolicySchema.parse({
    version: 1,
    default_action: 'pass',
    antivirus: { enabled: true, ports: [80] },
    scopes: { a: { endpoints: ['vpce-0123456789abcdef0'], default_action: 'pass', antivirus: { mode: 'alert' } } },
  });
  t.match(p.antivirus, { enabled: true, ports: [80], mode: 'block' });
  t.same(p.scopes?.['a']?.antivirus, { mode: 'alert' });
});

t.test("a scope's fields override the top level, the rest is inherited", async (t) => {
  const top = AntivirusSectionSchema.parse({ enabled: true, ports: [80, 8080], skip_domains: ['*.Example.com', 'Exact.test.'], on_timeout: 'open' });
  const e = effectiveAntivirus(top, AntivirusScopeSchema.parse({ mode: 'alert', directions: ['to_client'], max_object_bytes: 1000 }));
  t.equal(e.enabled, true);
  t.equal(e.block, false);
  t.equal(e.toServer, false);
  t.equal(e.toClient, true);
  t.same([...(e.ports ?? [])], [80, 8080]);
  t.equal(e.maxObjectBytes, 1000);
  t.equal(e.onTimeout, 'open');
  t.equal(effectiveAntivirus(top, AntivirusScopeSchema.parse({ ports: 'any' })).ports, null, "a scope can widen to 'any'");
  t.equal(effectiveAntivirus(top, null).block, true);
});

t.test('skips: Host names and Content-Type prefixes', async (t) => {
  const e = effectiveAntivirus(AntivirusSectionSchema.parse({ skip_domains: ['*.example.com', 'exact.test'], skip_content_types: ['Video/', 'image/png'] }), null);
  const hosts: [string | null, boolean][] = [
    ['a.example.com', true],
    ['A.B.EXAMPLE.COM:8443', true],
    ['example.com', false],
    ['badexample.com', false],
    ['exact.test', true],
    ['exact.test.', true],
    ['sub.exact.test', false],
    [null, false],
  ];
  for (const [h, skip] of hosts) t.equal(hostSkipped(e, h), skip, String(h));
  t.equal(hostName('[2001:db8::1]:80'), '[2001:db8::1]');
  const types: [string | null, boolean][] = [
    ['video/mp4', true],
    [' VIDEO/webm; codecs=vp9', true],
    ['image/png', true],
    ['image/jpeg', false],
    ['application/octet-stream', false],
    [null, false],
  ];
  for (const [c, skip] of types) t.equal(contentTypeSkipped(e, c), skip, String(c));
});

t.test('each not-scanned reason has its fail mode', async (t) => {
  const e = effectiveAntivirus(AntivirusSectionSchema.parse({ on_oversize: 'closed', on_timeout: 'open', on_scanner_error: 'open', on_incomplete: 'open' }), null);
  t.equal(failModeFor(e, 'size_limit'), 'closed');
  for (const r of ['timeout', 'unreachable', 'scanner_error', 'protocol_error', 'overloaded', 'incomplete'] as const) t.equal(failModeFor(e, r), 'open', r);
  const d = effectiveAntivirus(antivirusDefaults(), null);
  for (const r of ['timeout', 'unreachable', 'scanner_error', 'protocol_error', 'overloaded', 'incomplete'] as const) t.equal(failModeFor(d, r), 'closed', r);
});

t.test('the chain helpers: enabled when the top level or any scope enables it; config by scope name', async (t) => {
  const on = AntivirusSectionSchema.parse({ enabled: true });
  const off = AntivirusSectionSchema.parse({});
  const scopes = (a: AntivirusScopeSection | null) => [
    { name: 'default', antivirus: null },
    { name: 'a', antivirus: a },
  ];
  t.equal(antivirusEnabled({ antivirus: null, scopes: scopes(null) }), false, 'no section');
  t.equal(antivirusEnabled({ antivirus: off, scopes: scopes(null) }), false);
  t.equal(antivirusEnabled({ antivirus: on, scopes: scopes({ enabled: false }) }), true, 'the default scope still scans');
  t.equal(antivirusEnabled({ antivirus: off, scopes: scopes({ enabled: true }) }), true, 'one scope enables it');
  const cfg = antivirusStageConfig({ antivirus: on, scopes: scopes({ mode: 'alert' }) });
  t.equal(cfg.section, on);
  t.same([...cfg.scopes.entries()], [['default', null], ['a', { mode: 'alert' }]]);
});
