/**
 * `validate` as an operator meets it: the shipped rule-set files under rules/ are recognised as rule sets and
 * validated with their own schema (not rejected for lacking default_action), problems in a rule set are reported at
 * the rule set's own lines, and a YAML indentation mistake is reported at the culprit line and column in plain
 * words, not on the line before it in the parser's terms.
 */
import t from 'tap';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runValidate, guessKind } from '../../src/cli/validate.js';
import { bundleReader, loadPolicy } from '../../src/policy/load.js';
import { indentCulprit } from '../../src/policy/yaml-indent.js';
import { REPO } from '../helpers/appliance.js';

async function validate(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await runValidate(args, (s) => (out += `${s}\n`));
  return { code, out };
}

const SHIPPED_RULES = readdirSync(join(REPO, 'rules'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => join(REPO, 'rules', f));
const SHIPPED_POLICIES = [join(REPO, 'policies', 'default.yaml'), ...readdirSync(join(REPO, 'policies', 'examples')).map((f) => join(REPO, 'policies', 'examples', f))];

t.test('every shipped rule-set file validates as a rule set', async (t) => {
  t.ok(SHIPPED_RULES.length >= 3);
  for (const file of SHIPPED_RULES) {
    const r = await validate([file]);
    t.equal(r.code, 0, r.out);
    t.match(r.out, /valid rule-set file \(\d+ rules?, \d+ sets?/, file);
  }
  const forced = await validate(['--kind', 'policy', SHIPPED_RULES[0] as string]);
  t.equal(forced.code, 1, '--kind policy reads it as a policy, which needs default_action');
  t.match(forced.out, /missing required key "default_action"/);
});

t.test('shipped policies are still read as policies', async (t) => {
  for (const file of SHIPPED_POLICIES) {
    t.equal(guessKind(readFileSync(file, 'utf8'), file), 'policy', file);
    const r = await validate(['--policy-root', REPO, file]);
    t.equal(r.code, 0, r.out);
    t.match(r.out, /: valid \(\d+ rules? in \d+ scopes?/);
  }
});

t.test('a rule set is validated with its own schema and its problems point at its own lines', async (t) => {
  const dir = t.testdir({
    rules: {
      'sets.yaml': 'version: 1\nsets:\n  ports:\n    web: [80, 443]\n',
      'good.yaml': 'version: 1\ninclude: [sets.yaml]\nrules:\n  - name: web\n    action: pass\n    proto: tcp\n    dst_ports: $web\n',
      'bad.yaml': 'version: 1\ndescription: broken\nrules:\n  - name: web\n    action: permit\n    proto: tcp\n    dst_ports: $nope\n',
      'unknown-set.yaml': 'version: 1\nrules:\n  - name: web\n    action: pass\n    proto: tcp\n    dst_ports: $nope\n',
      'stray.yaml': 'version: 1\nrules: []\nscopes: {}\n',
    },
    'hinted.yaml': '# yaml-language-server: $schema=../docs/rules.schema.json\nversion: 1\nrules: []\n',
    'elsewhere.yaml': 'version: 1\nrules: []\n',
  });
  const good = await validate([join(dir, 'rules', 'good.yaml')]);
  t.equal(good.code, 0, good.out);
  t.match(good.out, /valid rule-set file \(1 rule, 1 set, 1 included file\)/);
  const bad = await validate([join(dir, 'rules', 'bad.yaml')]);
  t.equal(bad.code, 1);
  t.match(bad.out, /bad\.yaml:5:\d+ rules\[0\]\.action: /, 'the bad action at line 5 of the rule set');
  t.notMatch(bad.out, /default_action|gwlb-inspector-validate/, 'nothing about the harness policy shows');
  t.match(bad.out, /invalid rule-set file/);
  const unknown = await validate([join(dir, 'rules', 'unknown-set.yaml')]);
  t.match(unknown.out, /unknown-set\.yaml:6:\d+ rules\[0\]\.dst_ports: .*"nope"/, 'an unknown set at its line in the rule set');
  const json = await validate(['--json', join(dir, 'rules', 'bad.yaml')]);
  for (const line of json.out.trim().split('\n')) t.match(JSON.parse(line), { file: join(dir, 'rules', 'bad.yaml') });

  t.equal(guessKind(readFileSync(join(dir, 'rules', 'stray.yaml'), 'utf8'), join(dir, 'rules', 'stray.yaml')), 'policy', 'a key only policies have makes it a policy');
  t.equal((await validate([join(dir, 'hinted.yaml')])).code, 0, 'the $schema hint makes it a rule set anywhere');
  const elsewhere = await validate([join(dir, 'elsewhere.yaml')]);
  t.equal(elsewhere.code, 1, 'rules-shaped outside a rules directory, without a hint: a policy missing default_action');
  t.match(elsewhere.out, /missing required key "default_action"/);
  t.match(elsewhere.out, /check it with --kind rules/, 'with the way to check it as a rule set');
  t.equal((await validate(['--kind', 'rules', join(dir, 'elsewhere.yaml')])).code, 0);
});

t.test('a mis-indented policy is reported at the culprit line and column, in plain words', async (t) => {
  // Line 6 is the culprit: one space deeper than the keys of its rule (column 5).
  const dir = t.testdir({
    'policy.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - name: a\n    action: drop\n     proto: tcp\n  - name: b\n    action: pass\n',
    'dedent.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - name: a\n    action: drop\n   proto: tcp\n',
    'item-column.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - name: a\n    action: drop\n  proto: tcp\n',
  });
  const deeper = await validate([join(dir, 'policy.yaml')]);
  t.equal(deeper.code, 1);
  t.match(deeper.out, /policy\.yaml:6:6 \(document\): "proto" is indented to column 6, deeper than the line above/);
  t.notMatch(deeper.out, /policy\.yaml:5:/, 'nothing on the line before');
  t.notMatch(deeper.out, /compact mappings|Implicit keys/, "not the parser's wording");
  const dedent = await validate([join(dir, 'dedent.yaml')]);
  t.match(dedent.out, /dedent\.yaml:6:4 \(document\): "proto" starts at column 4, which lines up with nothing above it/);
  const item = await validate([join(dir, 'item-column.yaml')]);
  t.match(item.out, /item-column\.yaml:6:3 \(document\): "proto" starts at column 3, where the items \("- "\) of a list start: a key of the item above starts at column 5/);
});

t.test('one line of a shipped file indented one or two columns off is reported at that line', async (t) => {
  // Every significant line of every shipped policy and rule set, moved left 1 or right 1 or 2 columns: whenever
  // YAML rejects the result, count how often the first problem reported is on the moved line.
  let rejected = 0;
  let atCulprit = 0;
  const misses: string[] = [];
  for (const file of [...SHIPPED_POLICIES, ...SHIPPED_RULES]) {
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!/^ *[^ #]/.test(line)) return;
      const n = /^ */.exec(line)?.[0].length ?? 0;
      for (const d of [-1, 1, 2]) {
        if (n + d < 0) continue;
        const moved = [...lines];
        moved[i] = ' '.repeat(n + d) + line.slice(n);
        const r = loadPolicy('p.yaml', bundleReader({ 'p.yaml': moved.join('\n') }), { root: '/', realpaths: false });
        const yaml = r.issues.filter((x) => x.code === 'yaml');
        if (yaml.length === 0) continue;
        rejected++;
        if (yaml[0]?.line === i + 1) atCulprit++;
        else misses.push(`${file}:${i + 1} moved ${d}: reported ${yaml[0]?.line}:${yaml[0]?.col} ${yaml[0]?.message}`);
      }
    });
  }
  t.ok(rejected > 300, `${rejected} mis-indented variants rejected by YAML`);
  // The parser alone points at the moved line in 39 % of these cases; the culprit finder in 96 %.
  t.ok(atCulprit / rejected >= 0.9, `${atCulprit} of ${rejected} reported at the moved line; misses:\n${misses.slice(0, 10).join('\n')}`);
});

t.test('valid YAML never yields an indentation culprit', async (t) => {
  const dir = t.testdir({});
  for (const file of [...SHIPPED_POLICIES, ...SHIPPED_RULES]) t.equal(indentCulprit(readFileSync(file, 'utf8')), null, file);
  const tricky = [
    'a:\n- x\n- y\nb: 1\n',
    'description: >-\n  folded text\n    more deeply indented text\n  back\nrules: []\n',
    'a: [1,\n  2,\n    3]\nb: { c: 1,\n d: 2 }\n',
    'a: &anchor\n  b: 1\nc: *anchor\n',
    '- - nested\n  - list\n- x\n',
    '"quoted: key": 1\n\'single\': 2\n',
    'x:\n    deep: 1\n    also: 2\ny: 3\n',
    '---\na: 1\n',
  ];
  tricky.forEach((text, i) => {
    writeFileSync(join(dir, `t${i}.yaml`), text);
    t.equal(indentCulprit(text), null, JSON.stringify(text));
  });
});
