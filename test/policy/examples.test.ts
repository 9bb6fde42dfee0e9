import t from 'tap';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compilePolicy } from '../../src/policy/compile.js';
import { formatIssue } from '../../src/policy/errors.js';
import { loadPolicy } from '../../src/policy/load.js';
import { ACTION, STAGE_RESULT } from '../../src/pipeline/stage.js';
import { Harness } from '../fixtures/firewall.js';

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
