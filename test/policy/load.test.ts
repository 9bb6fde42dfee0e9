import t from 'tap';
import { join } from 'node:path';
import { compilePolicy } from '../../src/policy/compile.js';
import { loadPolicy, loadPolicyFromSources } from '../../src/policy/load.js';
import { ACTION } from '../../src/pipeline/stage.js';

const FILES = {
  policies: {
    'main.yaml': `version: 1
include: [../rules/nets.yaml]
default_action: drop
rules:
  - name: first
    action: pass
    proto: udp
    dst: $dns
  - include: ../rules/web.yaml
  - name: last
    action: reject
scopes:
  tenant:
    endpoints: [vpce-0a1b2c3d4e5f60718]
    default_action: pass
    rules:
      - include: ../rules/web.yaml
`,
  },
  rules: {
    'nets.yaml': `version: 1
sets:
  addresses:
    dns: [10.0.0.2]
`,
    'web.yaml': `version: 1
include: [nets.yaml]
sets:
  ports:
    web: [80, 443]
rules:
  - name: web
    action: alert
    proto: tcp
    dst_ports: $web
  - include: sub/more.yaml
`,
    sub: {
      'more.yaml': `version: 1
rules:
  - name: more
    action: drop
    proto: icmp
`,
    },
  },
};

t.test('includes are resolved relative to the including file and spliced in order', async (t) => {
  const dir = t.testdir(FILES);
  const root = join(dir, 'policies/main.yaml');
  const r = loadPolicy(root, undefined, { root: dir });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const def = r.policy.scopes[0]!;
  t.same(def.rules.map((x) => x.rule.name), ['first', 'web', 'more', 'last']);
  t.same(r.policy.scopes[1]!.rules.map((x) => x.rule.name), ['web', 'more']);
  const more = def.rules[2]!;
  t.equal(more.origin.file, join(dir, 'rules/sub/more.yaml'));
  t.same([more.origin.line, more.origin.col], [3, 5]);
  t.same(
    more.origin.includedFrom.map((p) => [p.file, p.line]),
    [
      [root, 9],
      [join(dir, 'rules/web.yaml'), 11],
    ],
    'the include chain, outermost first',
  );
  t.same(Object.keys(r.policy.sets.addresses), ['dns'], 'nets.yaml merged once though included twice');
  t.same(Object.keys(r.policy.sources).length, 4, 'every file read is in the bundle');
  t.same(r.files.length, 4);
});

t.test('the loaded policy is plain data: it survives structuredClone and recompiles from its own sources', async (t) => {
  const dir = t.testdir(FILES);
  const r = loadPolicy(join(dir, 'policies/main.yaml'), undefined, { root: dir });
  if (!r.ok) throw new Error('invalid');
  const copy = structuredClone(r.policy);
  const c = compilePolicy(copy);
  t.ok(c.ok);
  if (!c.ok) return;
  t.equal(c.policy.rules.length, 6);
  t.equal(c.policy.scopes[1]!.defaultAction, ACTION.PASS);
  const again = loadPolicyFromSources(r.policy.root, r.policy.sources);
  t.ok(again.ok, 'a worker can re-validate from the bundle without touching the disk');
  t.same(again.ok && again.policy.scopes.map((s) => s.rules.length), [4, 2]);
});

t.test('defaults are filled in (with their documented values)', async (t) => {
  const dir = t.testdir({ 'p.yaml': 'version: 1\ndefault_action: pass\n' });
  const r = loadPolicy(join(dir, 'p.yaml'));
  if (!r.ok) throw new Error('invalid');
  t.same(r.policy.settings, {
    tcp: { midstream_pickup: true, on_midstream: 'drop_packet', on_invalid: 'drop_packet' },
    names: { max_bytes: 8192, max_wait_ms: 1000, max_pending_flows: 4096, on_unreadable: 'drop', on_memcap: 'drop', on_unknown: 'drop', on_anomaly: 'drop_flow' },
    log: { max_per_s: 100 },
    stream: {
      depth_bytes: 16_777_216,
      ooo_max_bytes: 1_048_576,
      hole_wait_ms: 10_000,
      hole_wait_bytes: 524_288,
      head_wait_ms: 1000,
      on_overlap_different: 'drop_packet',
      on_hole_timeout: 'reject_flow',
      on_fragment: 'drop',
      on_memcap: 'drop',
    },
  });
  const c = compilePolicy(r.policy);
  t.ok(c.ok && c.policy.scopes[0]!.defaultLogPerS === 0, 'a pass default is not logged by default');
});

t.test('disabled rules are validated but not compiled', async (t) => {
  const dir = t.testdir({
    'p.yaml': `version: 1
default_action: pass
rules:
  - name: off
    enabled: false
    action: drop
  - name: on
    action: drop
    proto: udp
`,
  });
  const r = loadPolicy(join(dir, 'p.yaml'));
  const c = r.ok ? compilePolicy(r.policy) : undefined;
  t.same(c?.ok && c.policy.rules.map((x) => x.name), ['on']);
  t.same(r.issues, [], 'a disabled catch-all does not make later rules unreachable');
});

t.test('scope lookup by endpoint id halves', async (t) => {
  const dir = t.testdir(FILES);
  const r = loadPolicy(join(dir, 'policies/main.yaml'), undefined, { root: dir });
  const c = r.ok ? compilePolicy(r.policy) : undefined;
  if (c === undefined || !c.ok) throw new Error('invalid');
  t.equal(c.policy.scopeFor(true, 0xa1b2c3d4, 0xe5f60718), 1);
  t.equal(c.policy.scopeFor(true, 0xa1b2c3d4, 0xe5f60719), 0);
  t.equal(c.policy.scopeFor(false, 0xa1b2c3d4, 0xe5f60718), 0, 'no endpoint option: default scope');
  t.equal(c.policy.endpointScopes.get('vpce-0a1b2c3d4e5f60718'), 1);
});
