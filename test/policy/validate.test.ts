/**
 * The validator's messages are part of the product: a security engineer reads them. Each case is a policy with
 * one kind of mistake; the printed text (file:line:column path: message) is snapshotted and reviewed like code.
 * Regenerate after an intended change with: npx tap --snapshot test/policy/validate.test.ts
 */
import t from 'tap';
import { runValidate } from '../../src/cli/validate.js';

const CASES: Record<string, Record<string, string>> = {
  'typo in a key': {
    'policy.yaml': `version: 1
default_action: pass
rules:
  - name: web
    action: pass
    proto: tcp
    dst_port: 443
    desciption: typo
`,
  },
  'bad values': {
    'policy.yaml': `version: 1
default_action: permit
rules:
  - name: bad-cidr
    action: drop
    src: [10.0.0.300/8, 10.1.2.3/8, "2001:db8::1/32", 10.0.0.0/33]
  - name: bad-ports
    action: drop
    proto: tcp
    dst_ports: ["90-80", 70000, "80:90", -1]
  - name: bad domain
    action: drop
    proto: tcp
    sni: ["exa mple.com", "*foo.com", "-bad.example", "bücher.example"]
`,
  },
  'missing keys and wrong types': {
    'policy.yaml': `version: 2
rules:
  - name: no-action
    proto: tcp
  - action: drop
  - name: types
    action: drop
    src: { match: 10.0.0.0/8 }
    log: sometimes
    enabled: "yes"
  - just a string
`,
  },
  'fields that contradict each other': {
    'policy.yaml': `version: 1
default_action: pass
rules:
  - name: ports-without-tcp
    action: drop
    dst_ports: 22
  - name: icmp-on-tcp
    action: drop
    proto: tcp
    icmp_type: 8
  - name: two-names
    action: drop
    proto: tcp
    sni: a.example
    http_host: a.example
  - name: sni-on-udp
    action: drop
    proto: udp
    sni: a.example
  - name: flags
    action: drop
    proto: tcp
    tcp_flags: { set: [SYN, syn], not_set: [SYN] }
`,
  },
  'YAML pitfalls': {
    'policy.yaml': `version: 1
default_action: pass
rules:
  - name: exclusion-as-tag
    action: drop
    src: [10.0.0.0/8, !10.9.0.0/16]
  - name: unquoted-wildcard
    action: drop
    proto: tcp
    sni: *.example.com
`,
  },
  'YAML syntax': {
    'policy.yaml': `version: 1
default_action: pass
rules:
  - name: a
    action: drop
   proto: tcp
`,
  },
  'duplicate keys': {
    'policy.yaml': `version: 1
default_action: pass
default_action: drop
`,
  },
  'sets, references and names across files': {
    'policy.yaml': `version: 1
default_action: pass
include: [rules/shared.yaml]
sets:
  addresses:
    corp: [10.0.0.0/8]
    loop-a: [$loop-b]
    loop-b: [$loop-a]
  ports:
    web: [80, 443]
rules:
  - name: refs
    action: drop
    proto: tcp
    src: [$corpp, $web, $nothing-like-it]
    dst_ports: $corp
  - include: rules/shared.yaml
  - name: shared-rule
    action: pass
scopes:
  default:
    endpoints: [vpce-0123456789abcdef0]
    default_action: drop
  tenant-a:
    endpoints: [vpce-0123456789abcdef0, vpce-1123456789abcdef0]
    default_action: drop
`,
    'rules/shared.yaml': `version: 1
sets:
  addresses:
    corp: [192.168.0.0/16]
rules:
  - name: shared-rule
    action: drop
    src: $corp
`,
  },
  'includes: missing files and cycles': {
    'policy.yaml': `version: 1
default_action: pass
rules:
  - include: rules/a.yaml
  - include: rules/missing.yaml
  - include: rules/c.yaml
`,
    'rules/c.yaml': `version: 1
rules:
  - name: in-c
    action: pass
    frobnicate: true
`,
    'rules/a.yaml': `version: 1
rules:
  - name: in-a
    action: drop
    proto: udp
  - include: b.yaml
`,
    'rules/b.yaml': `version: 1
rules:
  - include: ./a.yaml
  - name: in-b
    action: pass
    sni: x.example
    proto: tcp
    dst_ports: [443]
`,
  },
  'warnings do not fail validation': {
    'policy.yaml': `version: 1
default_action: drop
rules:
  - name: everything
    action: pass
  - name: unreachable
    action: drop
    proto: udp
`,
  },
  'an empty list written as nothing': {
    'policy.yaml': `version: 1
default_action: pass
rules:
  # - name: commented-out
`,
  },
  'an empty file': { 'policy.yaml': '# nothing here\n' },
  'endpoint ids': {
    'policy.yaml': `version: 1
default_action: pass
scopes:
  tenant-a:
    endpoints: [vpce-012, vpc-0123456789abcdef0]
    default_action: drop
  tenant-b:
    endpoints: []
    default_action: drop
`,
  },
};

/** t.testdir wants directories as nested objects. */
function nest(files: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [path, text] of Object.entries(files)) {
    const parts = path.split('/');
    let dir = out;
    for (const p of parts.slice(0, -1)) dir = (dir[p] ??= {}) as Record<string, unknown>;
    dir[parts[parts.length - 1] as string] = text;
  }
  return out;
}

t.test('validator messages', async (t) => {
  for (const [name, files] of Object.entries(CASES)) {
    t.test(name, async (t) => {
      const dir = t.testdir(nest(files));
      t.chdir(dir);
      const lines: string[] = [];
      const code = await runValidate(['policy.yaml'], (s) => lines.push(s));
      t.matchSnapshot(`exit ${code}\n${lines.join('\n')}`, name);
    });
  }
});

t.test('several files at once; exit 1 when any is invalid; --json', async (t) => {
  const dir = t.testdir({
    'good.yaml': 'version: 1\ndefault_action: pass\n',
    'bad.yaml': 'version: 1\ndefault_action: maybe\n',
  });
  t.chdir(dir);
  const lines: string[] = [];
  t.equal(await runValidate(['good.yaml'], (s) => lines.push(s)), 0);
  t.equal(await runValidate(['good.yaml', 'bad.yaml'], (s) => lines.push(s)), 1);
  t.equal(await runValidate(['missing.yaml'], (s) => lines.push(s)), 1);
  t.equal(await runValidate([], (s) => lines.push(s)), 2, 'usage');
  t.matchSnapshot(lines.join('\n'), 'text output');
  const json: string[] = [];
  t.equal(await runValidate(['--json', 'bad.yaml'], (s) => json.push(s)), 1);
  t.match(JSON.parse(json[0] as string), { code: 'invalid', severity: 'error', file: 'bad.yaml', line: 2, col: 17, path: ['default_action'] });
});
