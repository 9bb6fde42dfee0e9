/**
 * Policy includes are confined to the policy's directory tree (or --policy-root): `..` escapes and symbolic links
 * that resolve outside are refused at the include's file:line:column, and the outside file is never read, so
 * none of its lines can reach an error message. The expansion limit is checked on an estimate before anything is
 * expanded, and a reload that fails on it (or on the load bounds) keeps the running policy.
 */
import t from 'tap';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicy, MAX_RULES_TOTAL } from '../../src/policy/load.js';
import { formatIssue } from '../../src/policy/errors.js';
import { MAX_RULES_PER_SCOPE } from '../../src/policy/schema.js';
import { PolicyManager } from '../../src/policy/reload.js';
import { runValidate } from '../../src/cli/validate.js';

/** Lines of a file outside the root: YAML that would be quoted back in an "unknown key" error if it were read. */
const SECRET = 'version: 1\nAKIA_SECRET_KEY_0123456789: hunter2-do-not-print\n';
const SECRET_MARKERS = /AKIA_SECRET|hunter2/;

async function validateOutput(file: string, extra: string[] = []): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await runValidate([...extra, file], (s) => lines.push(s));
  return { code, text: lines.join('\n') };
}

t.test('an include of ../secret outside the policy directory is refused at the include, and the secret is never shown', async (t) => {
  const dir = t.testdir({
    'secret.yaml': SECRET,
    policy: {
      'p.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - name: ok\n    action: pass\n  - include: ../secret.yaml\n',
      'top.yaml': 'version: 1\ninclude: [../secret.yaml]\ndefault_action: pass\n',
    },
  });
  for (const [name, line, col] of [['p.yaml', 6, 14], ['top.yaml', 2, 11]] as const) {
    const file = join(dir, 'policy', name);
    const r = loadPolicy(file);
    t.notOk(r.ok, `${name} is rejected`);
    const inc = r.issues.find((i) => i.code === 'include');
    t.match(inc, { file, line, col, severity: 'error', message: /outside the policy root/ }, `${name}: file:line:column of the include`);
    const text = r.issues.map(formatIssue).join('\n');
    t.notMatch(text, SECRET_MARKERS, `${name}: no line of the secret in the errors`);
    t.notOk(r.files.some((f) => f.endsWith('secret.yaml')), `${name}: the secret was not read (nor watched)`);
    const v = await validateOutput(file);
    t.equal(v.code, 1);
    t.match(v.text, `${file}:${line}:${col}`);
    t.notMatch(v.text, SECRET_MARKERS, `${name}: validate's output never shows the secret`);
  }
  // The same layout is accepted when the operator widens the root on purpose.
  const wide = loadPolicy(join(dir, 'policy', 'top.yaml'), undefined, { root: dir });
  t.notOk(wide.ok, 'the secret is not a valid rule-set file...');
  t.ok(wide.issues.some((i) => i.code === 'unknown_key'), '...which is only found out because --policy-root allowed reading it');
});

t.test('a symbolic link inside the root that resolves outside it is refused; a link that stays inside is followed', async (t) => {
  const dir = t.testdir({
    outside: { 'secret.yaml': SECRET },
    policy: {
      rules: { 'real.yaml': 'version: 1\nrules:\n  - name: inside\n    action: drop\n' },
      'p.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - include: rules/evil.yaml\n',
      'ok.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - include: rules/alias.yaml\n',
    },
  });
  symlinkSync(join(dir, 'outside', 'secret.yaml'), join(dir, 'policy', 'rules', 'evil.yaml'));
  symlinkSync('real.yaml', join(dir, 'policy', 'rules', 'alias.yaml'));
  const file = join(dir, 'policy', 'p.yaml');
  const r = loadPolicy(file);
  t.notOk(r.ok);
  t.match(r.issues, [{ code: 'include', file, line: 4, col: 14, message: /symbolic link.*outside the policy root/ }]);
  t.notMatch(r.issues.map(formatIssue).join('\n'), SECRET_MARKERS);
  const v = await validateOutput(file);
  t.notMatch(v.text, SECRET_MARKERS, 'validate never shows the link target');
  const ok = loadPolicy(join(dir, 'policy', 'ok.yaml'));
  t.ok(ok.ok, 'a link within the tree (as Kubernetes ConfigMap mounts use) works');
  t.same(ok.ok && ok.policy.scopes[0]!.rules.map((x) => x.rule.name), ['inside']);
  // A whole directory linked from outside into the tree is outside too.
  symlinkSync(join(dir, 'outside'), join(dir, 'policy', 'linked-dir'));
  writeFileSync(join(dir, 'policy', 'dir.yaml'), 'version: 1\ndefault_action: pass\nrules:\n  - include: linked-dir/secret.yaml\n');
  const viaDir = loadPolicy(join(dir, 'policy', 'dir.yaml'));
  t.match(viaDir.issues, [{ code: 'include', line: 4, message: /symbolic link/ }]);
});

/** Files r0..rN, each including the next `fanout` times; the last holds one rule: fanout^(levels) rules. */
function bomb(fanout: number, levels: number): Record<string, string> {
  const files: Record<string, string> = {};
  const includes = (next: string): string => Array.from({ length: fanout }, () => `  - include: ${next}\n`).join('');
  files['p.yaml'] = `version: 1\ndefault_action: pass\nrules:\n${includes('r1.yaml')}`;
  for (let i = 1; i < levels; i++) files[`r${i}.yaml`] = `version: 1\nrules:\n${includes(`r${i + 1}.yaml`)}`;
  files[`r${levels}.yaml`] = 'version: 1\nrules:\n  - name: leaf\n    action: drop\n    proto: icmp\n';
  return files;
}

t.test('a few small files that would expand past the limit are refused from an estimate, before expanding', async (t) => {
  const dir = t.testdir(bomb(8, 6)); // 8^6 = 262,144 rules from 7 files of a few lines each
  const r = loadPolicy(join(dir, 'p.yaml'));
  t.notOk(r.ok);
  const limit = r.issues.filter((i) => i.code === 'limit');
  t.equal(limit.length, 1, 'one limit error');
  t.match(limit[0], { file: join(dir, 'p.yaml'), line: 4, path: ['rules'], message: `scope "default" would expand to an estimated 262144 rules` });
  t.match(limit[0]!.message, `the limit is ${MAX_RULES_PER_SCOPE} rules per scope, so nothing was expanded`);
  t.equal(r.issues.length, 1, 'nothing else: the rules were never expanded (no duplicate-name errors for 262,144 copies)');

  // Under the per-scope limit in each scope (8 × 8^4 = 32,768), over the total in all: 7 × 32,768 = 229,376.
  const files = bomb(8, 5);
  const eight = Array.from({ length: 8 }, () => '      - include: r1.yaml\n').join('');
  const scopes = Array.from({ length: 7 }, (_, i) => `  s${i}:\n    endpoints: [vpce-0000000000000000${i}]\n    default_action: pass\n    rules:\n${eight}`).join('');
  files['p.yaml'] = `version: 1\ndefault_action: pass\nscopes:\n${scopes}`;
  const dir2 = t.testdir(files);
  const r2 = loadPolicy(join(dir2, 'p.yaml'));
  t.notOk(r2.ok);
  t.match(r2.issues, [{ code: 'limit', message: `would expand to an estimated ${7 * 8 ** 5} rules across its 8 scopes; the limit is ${MAX_RULES_TOTAL}` }]);
  t.equal(r2.issues.length, 1);
});

t.test('a reload with such a file keeps the running policy (bounded loader and synchronous reload alike)', async (t) => {
  const good = 'version: 1\ndefault_action: drop\nrules:\n  - name: web\n    action: pass\n    proto: tcp\n    dst_ports: [443]\n';
  const files = { ...bomb(8, 6), 'p.yaml': good };
  const dir = t.testdir(files);
  const file = join(dir, 'p.yaml');
  const m = new PolicyManager(file);
  const first = await m.loadBounded();
  t.ok(first.ok, 'the good policy loads in the bounded loader');
  t.equal(m.generation, 1);
  const before = m.currentLoaded;

  const bombText = bomb(8, 6)['p.yaml'] as string;
  writeFileSync(file, bombText);
  const bad = await m.loadBounded();
  t.notOk(bad.ok, 'the reload is rejected');
  t.match(!bad.ok && bad.issues, [{ code: 'limit', message: /estimated 262144 rules.*limit is 50000/ }]);
  t.equal(m.generation, 1, 'the generation did not move');
  t.equal(m.currentLoaded, before, 'the running policy stays in force');
  t.same(m.currentLoaded?.scopes[0]?.rules.map((r) => r.rule.name), ['web']);
  t.match(m.counters, { reloadOk: 1, reloadFailed: 1 });

  const sync = m.load();
  t.notOk(sync.ok, 'the synchronous reload path refuses it the same way');
  t.equal(m.generation, 1);

  writeFileSync(file, good.replace('443', '8443'));
  const fixed = await m.loadBounded();
  t.ok(fixed.ok);
  t.equal(m.generation, 2);
});

t.test('the bounded loader stops a load past its memory bound with a clear error, and the running policy stays', async (t) => {
  // Within the rule limits but costly to load: 6,000 distinct rules (a valid 1 MB file) under the smallest heap
  // bound. Nothing here asserts on time.
  const rules = Array.from({ length: 6_000 }, (_, i) => `  - { name: r${i}, action: drop, proto: tcp, dst: [10.${(i >> 8) & 255}.${i & 255}.0/24, 172.16.0.0/${12 + (i % 8)}], dst_ports: ["${i % 60000}-${(i % 60000) + 100}"] }\n`).join('');
  const dir = t.testdir({ 'p.yaml': 'version: 1\ndefault_action: pass\n' });
  const file = join(dir, 'p.yaml');
  const m = new PolicyManager(file, { bounds: { timeoutMs: 120_000, maxHeapMb: 64 } });
  t.ok((await m.loadBounded()).ok);
  writeFileSync(file, `version: 1\ndefault_action: pass\nrules:\n${rules}`);
  const r = await m.loadBounded();
  t.notOk(r.ok);
  t.match(!r.ok && r.issues, [{ code: 'limit', message: /more than 64 MiB of memory \(--policy-load-max-mb\).*running policy stays/ }]);
  t.equal(m.generation, 1, 'the running policy stays');
});
