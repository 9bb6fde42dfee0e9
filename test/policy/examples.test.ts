import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compilePolicy } from '../../src/policy/compile.js';
import { formatIssue } from '../../src/policy/errors.js';
import { loadPolicy } from '../../src/policy/load.js';
import { ACTION, STAGE_RESULT } from '../../src/pipeline/stage.js';
import { Harness } from '../fixtures/firewall.js';
import { CLI } from '../helpers/appliance.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const files = ['policies/default.yaml', ...readdirSync(`${repo}policies/examples`).map((f) => `policies/examples/${f}`)];

t.test('every shipped policy is valid, without warnings, and references the JSON schema', async (t) => {
  t.chdir(repo);
  for (const f of files) {
    const r = loadPolicy(f, undefined, { root: repo });
    t.same(r.issues.map(formatIssue), [], f);
    t.ok(r.ok && compilePolicy(r.policy).ok, `${f} compiles`);
    if (r.ok) {
      for (const [file, text] of Object.entries(r.policy.sources)) t.match(text, /^# yaml-language-server: \$schema=\.\.\/(\.\.\/)?docs\/(policy|rules)\.schema\.json$/m, `${file} points editors at the schema`);
    }
  }
  t.ok(files.length >= 5);
});

t.test('the default policy passes everything', async (t) => {
  t.chdir(repo);
  const r = loadPolicy('policies/default.yaml', undefined, { root: repo });
  const c = r.ok ? compilePolicy(r.policy) : undefined;
  if (c === undefined || !c.ok) throw new Error('invalid');
  const h = new Harness(c.policy);
  const cases = [
    { src: '10.0.0.1', dst: '93.184.216.34', dport: 443 },
    { src: '203.0.113.9', dst: '10.0.0.5', dport: 22 },
    { proto: 'udp' as const, src: 'fd00::1', dst: '2001:db8::1', dport: 53 },
    { proto: 'icmp' as const, src: '10.0.0.1', dst: '10.0.0.2' },
  ];
  cases.forEach((c, i) => t.equal(h.send({ flow: i + 1, ...c }).result, STAGE_RESULT.CONTINUE));
  t.equal(h.logs.length, 0);
});

t.test('the examples do what their comments say', async (t) => {
  t.chdir(repo);
  const stage = (f: string): Harness => {
    const r = loadPolicy(f, undefined, { root: repo });
    const c = r.ok ? compilePolicy(r.policy) : undefined;
    if (c === undefined || !c.ok) throw new Error(`${f} invalid`);
    return new Harness(c.policy);
  };
  const egress = stage('policies/examples/egress-allowlist.yaml');
  t.equal(egress.stage.explain({ proto: 6, src: '10.0.1.5', srcPort: 40000, dst: '52.94.0.10', dstPort: 443, sni: 's3.us-east-1.amazonaws.com' }).decision.action, 'pass');
  t.equal(egress.stage.explain({ proto: 6, src: '10.0.1.5', srcPort: 40000, dst: '203.0.113.9', dstPort: 443, sni: 'evil.example' }).decision.action, 'reject');
  t.equal(egress.stage.explain({ proto: 17, src: '10.0.1.5', srcPort: 40000, dst: '10.0.0.2', dstPort: 53 }).decision.action, 'pass');
  const inbound = stage('policies/examples/inbound-web.yaml');
  t.equal(inbound.stage.explain({ proto: 6, src: '198.51.100.7', srcPort: 51000, dst: '10.20.1.10', dstPort: 443 }).decision.action, 'pass');
  t.equal(inbound.stage.explain({ proto: 6, src: '198.51.100.7', srcPort: 51000, dst: '10.20.1.10', dstPort: 22 }).decision.action, 'reject');
  t.equal(inbound.stage.explain({ proto: 6, src: '192.0.2.4', srcPort: 51000, dst: '10.20.1.10', dstPort: 22 }).decision.action, 'alert');
  t.equal(inbound.stage.explain({ proto: 17, src: '198.51.100.7', srcPort: 51000, dst: '10.20.1.10', dstPort: 53 }).decision.action, 'drop');
  const ew = stage('policies/examples/east-west.yaml');
  t.equal(ew.stage.explain({ proto: 6, src: '10.1.1.5', srcPort: 40000, dst: '10.1.2.7', dstPort: 8080 }).decision.action, 'pass');
  t.equal(ew.stage.explain({ proto: 6, src: '10.1.2.7', srcPort: 40000, dst: '10.1.1.5', dstPort: 8080 }).decision.action, 'drop', 'app may not open connections to web');
  t.equal(ew.stage.explain({ proto: 6, src: '10.1.3.9', srcPort: 40000, dst: '10.1.1.5', dstPort: 443 }).decision.action, 'reject');
  t.equal(ew.stage.explain({ proto: 6, src: '192.0.2.1', srcPort: 40000, dst: '10.1.1.5', dstPort: 443 }).decision.action, 'pass');
  const mt = stage('policies/examples/multi-tenant.yaml');
  t.equal(mt.stage.explain({ proto: 6, src: '10.50.0.4', srcPort: 40000, dst: '93.184.216.34', dstPort: 443, endpoint: 'vpce-0a1b2c3d4e5f60718' }).decision.action, 'pass');
  t.equal(mt.stage.explain({ proto: 6, src: '10.60.0.4', srcPort: 40000, dst: '93.184.216.34', dstPort: 443, endpoint: 'vpce-0ffffffffffffffff' }).decision.action, 'drop');
  t.equal(mt.stage.explain({ proto: 6, src: '10.60.0.4', srcPort: 40000, dst: '93.184.216.34', dstPort: 443, endpoint: 'vpce-0123456789abcdef0' }).decision.action, 'alert');
  t.equal(ACTION.PASS, 1);
});

/** The `explain` commands in each shipped policy's header comment, parsed into explain() inputs. */
function headerExamples(file: string, text: string): { line: string; input: Parameters<Harness['stage']['explain']>[0] }[] {
  const out: { line: string; input: Parameters<Harness['stage']['explain']>[0] }[] = [];
  for (const m of text.matchAll(/^#\s+npx gwlb-inspector explain (?:--policy-root \. )?--policy (\S+) (tcp|udp) ([\d.]+):(\d+) ([\d.]+):(\d+)(?: --sni (\S+))?(?: --endpoint (\S+))?[ \t]*$/gm)) {
    if (m[1] !== file) throw new Error(`${file}: its example explains ${m[1]}`);
    const input: Parameters<Harness['stage']['explain']>[0] = { proto: m[2] === 'tcp' ? 6 : 17, src: m[3] as string, srcPort: Number(m[4]), dst: m[5] as string, dstPort: Number(m[6]) };
    if (m[7] !== undefined) input.sni = m[7];
    if (m[8] !== undefined) input.endpoint = m[8];
    out.push({ line: m[0].replace(/^#\s+/, ''), input });
  }
  return out;
}

t.test('every explain example in a shipped policy header decides as the header text says', async (t) => {
  t.chdir(repo);
  // What each header sentence promises for its example flow: the action and the rule that decides it.
  const expected: Record<string, { action: string; by: string; rule: string | null }> = {
    // "passes everything"
    'policies/default.yaml tcp 10.0.0.5:40000 93.184.216.34:443': { action: 'pass', by: 'default', rule: null },
    // "web may call app on 8080"
    'policies/examples/east-west.yaml tcp 10.1.1.5:40000 10.1.2.7:8080': { action: 'pass', by: 'rule', rule: 'web-to-app' },
    // "nothing else crosses tiers — whichever side opens the connection": the database tier opening to web
    'policies/examples/east-west.yaml tcp 10.1.3.9:40000 10.1.1.5:443': { action: 'reject', by: 'rule', rule: 'db-never-initiates' },
    // "workloads may reach only the HTTPS/HTTP sites listed", read from the SNI
    'policies/examples/egress-allowlist.yaml tcp 10.0.1.5:40000 52.94.0.10:443 --sni s3.us-east-1.amazonaws.com': { action: 'pass', by: 'rule', rule: 'approved-https' },
    // "everything else leaving the VPC is refused"
    'policies/examples/egress-allowlist.yaml tcp 10.0.1.5:40000 203.0.113.9:443 --sni evil.example': { action: 'reject', by: 'default', rule: null },
    // "from the internet, only HTTP and HTTPS to the web tier"
    'policies/examples/inbound-web.yaml tcp 198.51.100.7:51000 10.20.1.10:443': { action: 'pass', by: 'rule', rule: 'web' },
    // SSH from outside the operations network: the rule's own description says "Reset at once", so reject
    'policies/examples/inbound-web.yaml tcp 198.51.100.7:51000 10.20.1.10:22': { action: 'reject', by: 'rule', rule: 'ssh-from-anywhere-else' },
    // each listed endpoint gets its own scope and rules
    'policies/examples/multi-tenant.yaml tcp 10.50.0.4:40000 93.184.216.34:443 --endpoint vpce-0a1b2c3d4e5f60718': { action: 'pass', by: 'rule', rule: 'a-egress-web' },
    // "endpoints not listed ... use the top-level rules and default_action — here: drop"
    'policies/examples/multi-tenant.yaml tcp 10.60.0.4:40000 93.184.216.34:443 --endpoint vpce-0ffffffffffffffff': { action: 'drop', by: 'default', rule: null },
  };
  const seen: string[] = [];
  for (const f of files) {
    const r = loadPolicy(f, undefined, { root: repo });
    const c = r.ok ? compilePolicy(r.policy) : undefined;
    if (!r.ok || c === undefined || !c.ok) throw new Error(`${f} invalid`);
    const h = new Harness(c.policy);
    for (const ex of headerExamples(f, r.policy.sources[f] ?? '')) {
      const key = ex.line.replace(/^npx gwlb-inspector explain (--policy-root \. )?--policy /, '');
      // The command as a reader copies it from the comment, run from the repository root with the real CLI.
      const cli = spawnSync(process.execPath, [CLI, ...ex.line.split(' ').slice(2)], { cwd: repo, encoding: 'utf8' });
      t.equal(cli.status, 0, `${key}: the header's command runs as written (${cli.stdout.split('\n')[0] ?? ''})`);
      t.match(cli.stdout, new RegExp(`^decision\\s+${expected[key]?.action.toUpperCase() ?? '?'} `, 'm'), `${key}: the CLI prints the same decision`);
      seen.push(key);
      const e = h.stage.explain(ex.input);
      t.ok(e.fastPathAgrees, `${key}: the packet path agrees`);
      t.same({ action: e.decision.action, by: e.decision.by, rule: e.decision.rule?.name ?? null }, expected[key], key);
    }
  }
  t.same(seen.sort(), Object.keys(expected).sort(), 'every header example is checked, and only those');
});
