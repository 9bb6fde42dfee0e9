import t from 'tap';
import fc from 'fast-check';
import { parseIp } from '../../src/packet/address.js';
import { createPacketFacts, firstMatch, firstMatchLinear, NAME_MODE } from '../../src/firewall/evaluate.js';
import { createFlowView, RuleIndex, SPARSE_MAX, type FlowView } from '../../src/firewall/rule-index.js';
import { policy } from '../fixtures/firewall.js';

// A small universe so that rules overlap, nest and exclude each other.
const V4 = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3', '192.0.2.0/24', '0.0.0.0/0', '10.255.255.255', '0.0.0.0/1', '128.0.0.0/1'];
const V6 = ['2001:db8::/32', '2001:db8:1::/48', '::/0', 'fd00::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'];
const ADDRS = [...V4, ...V6];
const PORTS = ['80', '443', '"1024-65535"', '"0-1023"', '22', '"8000-8100"', '65535', '0'];
const PROBE_V4 = ['10.1.2.3', '10.1.2.4', '10.2.0.1', '192.0.2.9', '8.8.8.8', '10.255.255.255', '0.0.0.0', '255.255.255.255', '127.0.0.1', '128.0.0.0'];
const PROBE_V6 = ['2001:db8::1', '2001:db8:1::9', 'fd00::1', 'fd00::2', '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::'];
const PROBE_PORTS = [0, 22, 80, 443, 1023, 1024, 8050, 65535, 12345];

const addrSpec = fc.oneof(
  fc.constant(undefined),
  fc.subarray(ADDRS, { minLength: 1, maxLength: 3 }).map((a) => `[${a.map((x) => `"${x}"`).join(', ')}]`),
  fc.tuple(fc.subarray(ADDRS, { minLength: 1, maxLength: 2 }), fc.subarray(ADDRS, { minLength: 1, maxLength: 2 })).map(([m, e]) => `{ match: [${m.map((x) => `"${x}"`).join(', ')}], except: [${e.map((x) => `"${x}"`).join(', ')}] }`),
);
const portSpec = fc.oneof(fc.constant(undefined), fc.subarray(PORTS, { minLength: 1, maxLength: 3 }).map((p) => `[${p.join(', ')}]`));
const ruleArb = fc.record({
  action: fc.constantFrom('pass', 'drop', 'reject', 'alert'),
  proto: fc.constantFrom(undefined, 'tcp', 'udp', '[tcp, udp]', 'icmp'),
  src: addrSpec,
  dst: addrSpec,
  sport: portSpec,
  dport: portSpec,
  direction: fc.constantFrom('from_initiator', 'to_initiator', 'either'),
});
type R = typeof ruleArb extends fc.Arbitrary<infer X> ? X : never;

function policyText(rules: R[]): string {
  const lines = ['version: 1', 'default_action: pass', rules.length === 0 ? 'rules: []' : 'rules:'];
  rules.forEach((r, i) => {
    lines.push(`  - name: r${i}`, `    action: ${r.action}`, `    direction: ${r.direction}`);
    const portsOk = r.proto === 'tcp' || r.proto === 'udp' || r.proto === '[tcp, udp]';
    if (r.proto !== undefined) lines.push(`    proto: ${r.proto}`);
    if (r.src !== undefined) lines.push(`    src: ${r.src}`);
    if (r.dst !== undefined) lines.push(`    dst: ${r.dst}`);
    if (portsOk && r.sport !== undefined) lines.push(`    src_ports: ${r.sport}`);
    if (portsOk && r.dport !== undefined) lines.push(`    dst_ports: ${r.dport}`);
  });
  return lines.join('\n') + '\n';
}

const tupleArb = fc.record({
  proto: fc.constantFrom(6, 17, 1, 47),
  v6: fc.boolean(),
  s: fc.nat(100),
  d: fc.nat(100),
  sport: fc.constantFrom(...PROBE_PORTS),
  dport: fc.constantFrom(...PROBE_PORTS),
  from: fc.nat(40),
});

function view(x: { proto: number; v6: boolean; s: number; d: number; sport: number; dport: number }): FlowView {
  const probes = x.v6 ? PROBE_V6 : PROBE_V4;
  const v = createFlowView();
  v.proto = x.proto;
  v.src.set(parseIp(probes[x.s % probes.length] as string));
  v.dst.set(parseIp(probes[x.d % probes.length] as string));
  v.sport = x.sport;
  v.dport = x.dport;
  return v;
}

t.test('the index finds the same first match as a linear scan (random policies)', async (t) => {
  fc.assert(
    fc.property(fc.array(ruleArb, { minLength: 0, maxLength: 30 }), fc.array(tupleArb, { minLength: 1, maxLength: 30 }), (rules, tuples) => {
      const p = policy(policyText(rules));
      const scope = p.scopes[0]!;
      const f = createPacketFacts();
      f.nameMode = NAME_MODE.UNREADABLE_STOP;
      for (const x of tuples) {
        const v = view(x);
        for (const ignoreL4 of [false, true]) {
          f.ignoreL4 = ignoreL4;
          const a = firstMatch(p, scope, v, x.from, f);
          const b = firstMatchLinear(p, scope, v, x.from, f);
          if (a !== b) return false;
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

t.test('large policies: summary words, dense sets and the sparse driver agree with the scan', async (t) => {
  // 3,000 rules: some broad (dense intervals), many narrow (sparse), past 1,024 terms (several summary words).
  const rand = (() => {
    let x = 99;
    return (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 4294967296;
    };
  })();
  const lines = ['version: 1', 'default_action: pass', 'rules:'];
  for (let i = 0; i < 3000; i++) {
    lines.push(`  - name: r${i}`, `    action: ${i % 3 === 0 ? 'drop' : 'alert'}`, '    proto: tcp');
    if (i % 97 === 0) lines.push('    dst: 10.0.0.0/8');
    else if (i % 5 !== 0) lines.push(`    dst: 10.${i % 7}.${Math.floor(i / 7) % 256}.0/24`);
    if (i % 11 === 0) lines.push('    dst_ports: "1024-65535"');
    else if (i % 3 === 0) lines.push(`    dst_ports: ${i % 2 === 0 ? 443 : 80}`);
  }
  const p = policy(lines.join('\n') + '\n');
  const scope = p.scopes[0]!;
  t.ok(scope.matcher.stats.denseSets > 0, 'some intervals are dense');
  const f = createPacketFacts();
  f.nameMode = NAME_MODE.UNREADABLE_STOP;
  let mismatches = 0;
  for (let k = 0; k < 3000; k++) {
    const v = createFlowView();
    v.proto = 6;
    v.src.set(parseIp('192.0.2.1'));
    const a = Math.floor(rand() * 8);
    const b = Math.floor(rand() * 300);
    v.dst.set(parseIp(`10.${a}.${b % 256}.${Math.floor(rand() * 256)}`));
    v.dport = [80, 443, 22, 5000][Math.floor(rand() * 4)]!;
    const from = Math.floor(rand() * 3000);
    if (firstMatch(p, scope, v, from, f) !== firstMatchLinear(p, scope, v, from, f)) mismatches++;
    if (firstMatch(p, scope, v, 0, f) !== firstMatchLinear(p, scope, v, 0, f)) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('an empty index and an all-wild index', async (t) => {
  const empty = new RuleIndex([]);
  const v = createFlowView();
  empty.prepare(v, false);
  t.equal(empty.next(0), -1);
  const wild = new RuleIndex(Array.from({ length: 40 }, () => ({ proto: null, src: null, dst: null, sport: null, dport: null })));
  wild.prepare(v, false);
  t.equal(wild.next(0), 0);
  t.equal(wild.next(33), 33);
  t.equal(wild.next(40), -1);
  t.ok(SPARSE_MAX >= 1);
});
