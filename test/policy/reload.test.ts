import t from 'tap';
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { ACTION, STAGE_RESULT } from '../../src/pipeline/stage.js';
import { FirewallStage } from '../../src/firewall/stage.js';
import { PolicyManager, type ReloadResult } from '../../src/policy/reload.js';
import { Harness } from '../fixtures/firewall.js';

const GOOD = (action: string): string => `version: 1\ndefault_action: ${action}\n`;

t.test('a reload that fails keeps the running policy, and is counted', async (t) => {
  const dir = t.testdir({ 'p.yaml': GOOD('pass') });
  const file = join(dir, 'p.yaml');
  const m = new PolicyManager(file);
  const first = m.load();
  t.ok(first.ok);
  if (!first.ok) return;
  const h = new Harness(first.policy);
  t.equal(h.send({ flow: 1, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).result, STAGE_RESULT.CONTINUE);

  writeFileSync(file, 'version: 1\ndefault_action: dorp\n');
  const bad = m.load();
  t.notOk(bad.ok);
  t.match(!bad.ok && bad.issues[0], { line: 2, col: 17, path: ['default_action'] });
  t.equal(m.current, first.policy, 'the running policy stays');
  t.same(m.counters, { reloadOk: 1, reloadFailed: 1, lastAttemptMs: m.counters.lastAttemptMs, lastLoadDurationMs: m.counters.lastLoadDurationMs });
  t.equal(m.lastErrors.length, 1);
  t.equal(h.send({ flow: 2, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).result, STAGE_RESULT.CONTINUE, 'the stage never saw the broken file');

  writeFileSync(file, GOOD('drop'));
  const fixed = m.load();
  t.ok(fixed.ok);
  if (!fixed.ok) return;
  t.equal(fixed.generation, 2);
  h.stage.setPolicy(fixed.policy, { reevaluate: fixed.reevaluate });
  t.equal(h.send({ flow: 3, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).action, ACTION.DROP, 'the fix applies to new flows');
  t.equal(h.send({ flow: 1, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).result, STAGE_RESULT.CONTINUE, 'established flows keep their verdict');
  t.equal(m.lastErrors.length, 0);
});

t.test('watching: a change to the policy or an include triggers one debounced reload', async (t) => {
  const dir = t.testdir({
    'p.yaml': 'version: 1\ndefault_action: pass\nrules:\n  - include: r.yaml\n',
    'r.yaml': 'version: 1\nrules: []\n',
  });
  const m = new PolicyManager(join(dir, 'p.yaml'));
  t.ok(m.load().ok);
  const results: ReloadResult[] = [];
  let wake: (() => void) | undefined;
  const stop = m.watch((r) => {
    results.push(r);
    wake?.();
  }, 30);
  t.teardown(stop);
  const next = (): Promise<void> => new Promise((resolve) => (wake = resolve));

  let arrived = next();
  // An editor-style save: write a temp file, rename over the include.
  writeFileSync(join(dir, 'r.yaml.tmp'), 'version: 1\nrules:\n  - name: x\n    action: drop\n    proto: udp\n');
  renameSync(join(dir, 'r.yaml.tmp'), join(dir, 'r.yaml'));
  await arrived;
  t.equal(results.length, 1);
  t.ok(results[0]?.ok);
  t.equal(results[0]?.ok && results[0].policy.rules.length, 1, 'the include change is in the new policy');

  arrived = next();
  writeFileSync(join(dir, 'p.yaml'), 'version: 1\ndefault_action: nope\n');
  await arrived;
  t.notOk(results[1]?.ok, 'a broken save is reported');
  t.equal(m.current?.rules.length, 1, 'and changes nothing');
  t.equal(m.counters.reloadFailed, 1);
});

t.test('FirewallStage.fromFile reports every issue of an invalid file', async (t) => {
  const dir = t.testdir({ 'p.yaml': 'version: 1\ndefault_action: x\nrules: 5\n' });
  t.throws(() => FirewallStage.fromFile(join(dir, 'p.yaml')), { name: 'PolicyLoadError', code: 'POLICY_INVALID', issues: [{ line: 2 }, { line: 3 }] });
  const ok = t.testdir({ 'p.yaml': GOOD('reject') });
  t.equal(FirewallStage.fromFile(join(ok, 'p.yaml')).currentPolicy.scopes[0]?.defaultAction, ACTION.REJECT);
});
