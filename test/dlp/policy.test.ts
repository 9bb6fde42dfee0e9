import t from 'tap';
import { join } from 'node:path';
import { loadPolicy } from '../../src/policy/load.js';
import { formatIssue } from '../../src/policy/errors.js';
import { DlpSectionSchema, DlpScopeSchema, effectiveDlp } from '../../src/dlp/policy.js';
import { builtinPacks } from '../../src/dlp/detector.js';

t.test('the section defaults are the documented ones', async (t) => {
  const s = DlpSectionSchema.parse({});
  t.same(s, {
    enabled: false,
    mode: 'block',
    action: 'reject',
    directions: ['to_server'],
    packs: ['payment', 'identity', 'credentials'],
    min_likelihood: 'LIKELY',
    detectors: {},
    custom: [],
    scan_depth_bytes: { to_server: 16 * 1024 * 1024, to_client: 1024 * 1024 },
    hold_budget_ms: 2000,
    hold_budget_bytes: 1024 * 1024,
    fail: 'closed',
  });
  t.throws(() => DlpSectionSchema.parse({ enabeld: true }), 'strict: a typo is an error');
  const scope = DlpScopeSchema.parse({ mode: 'alert', scan_depth_bytes: { to_client: 5 } });
  const eff = effectiveDlp(DlpSectionSchema.parse({ enabled: true }), scope);
  t.equal(eff.mode, 'alert');
  t.same(eff.scan_depth_bytes, { to_server: 16 * 1024 * 1024, to_client: 5 }, 'a scope overrides one field of a nested object');
  t.equal(eff.enabled, true, 'the rest is inherited');
});

t.test('the built-in packs load and every detector compiles', async (t) => {
  const packs = builtinPacks();
  t.same([...packs.keys()].sort(), ['credentials', 'identity', 'markers', 'payment']);
  const names = [...packs.values()].flatMap((p) => p.detectors.map((d) => d.name));
  t.same(new Set(names).size, names.length, 'detector names are unique across packs');
});

t.test('policy errors in the dlp section carry file:line:column', async (t) => {
  const dir = t.testdir({
    'p.yaml': [
      'version: 1',
      'default_action: pass',
      'dlp:',
      '  enabled: true',
      '  packs: [payment, nosuchpack]',
      '  detectors:',
      '    nosuchdetector: { min_count: 2 }',
      '  custom:',
      '    - name: employee_id',
      "      pattern: '(?<=EMP)[0-9]{6}'",
      '      max_span: 9',
      '    - name: project_names',
      '      terms: [bluebird, kestrel]',
      '      max_span: 8',
      'scopes:',
      '  tenant:',
      '    endpoints: [vpce-0123456789abcdef0]',
      '    default_action: pass',
      '    dlp:',
      '      custom:',
      "        - { name: broken, pattern: '[a-', max_span: 4 }",
      '',
    ].join('\n'),
  });
  const r = loadPolicy(join(dir, 'p.yaml'));
  t.notOk(r.ok);
  const lines = r.issues.map(formatIssue);
  const has = (re: RegExp, what: string) => t.ok(lines.some((l) => re.test(l)), `${what}: ${lines.join(' | ')}`);
  has(/p\.yaml:5:\d+ .*unknown DLP pack "nosuchpack"/, 'unknown pack');
  has(/p\.yaml:7:\d+ .*unknown DLP detector "nosuchdetector"/, 'unknown detector override');
  has(/p\.yaml:10:\d+ .*RE2 cannot compile it/, 'lookbehind is not RE2');
  has(/p\.yaml:21:\d+ .*RE2 cannot compile it/, 'a scope custom detector');
  t.notOk(lines.some((l) => l.includes('project_names')), 'the keyword-list detector is fine');
});

t.test('a valid dlp section loads', async (t) => {
  const dir = t.testdir({
    'p.yaml': ['version: 1', 'default_action: pass', 'dlp:', '  enabled: true', '  mode: alert', '  custom:', "    - { name: ticket, pattern: 'TCK-[0-9]{6}', max_span: 10, likelihood: LIKELY }", ''].join('\n'),
  });
  const r = loadPolicy(join(dir, 'p.yaml'));
  t.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  if (r.ok) t.equal(r.policy.dlp?.custom[0]?.name, 'ticket');
});
