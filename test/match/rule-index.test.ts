import t from 'tap';
import fc from 'fast-check';
import { parseIp } from '../../src/packet/address.js';
import { createPacketFacts, firstMatch, firstMatchLinear, NAME_MODE } from '../../src/firewall/evaluate.js';
import { createFlowView, RuleIndex, SPARSE_MAX, type FlowView } from '../../src/match/rule-index.js';
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

// ---------------------------------------------------------------------------------------------------------------
// An oracle independent of src/: each rule's YAML meaning read back from the generator's record (protocol names,
// CIDRs parsed here with BigInt arithmetic, port ranges parsed here), scanned in order; first match wins.

/** Address text → [family, 32- or 128-bit value], parsed without src/. */
function addr(text: string): [4 | 6, bigint] {
  if (text.includes('.')) return [4, text.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n)];
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const tl = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
  return [6, groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n)];
}

function inCidr(cidr: string, probe: string): boolean {
  const [net = '', len] = cidr.split('/');
  const [fam, v] = addr(net);
  const [pfam, pv] = addr(probe);
  if (fam !== pfam) return false;
  const bits = fam === 4 ? 32 : 128;
  const shift = BigInt(bits - (len === undefined ? bits : Number(len)));
  return v >> shift === pv >> shift;
}

function parseList(spec: string): string[] {
  return spec.replace(/^\[|\]$/g, '').split(',').map((x) => x.trim().replace(/"/g, ''));
}

function addrMatches(spec: string | undefined, probe: string): boolean {
  if (spec === undefined) return true;
  const m = /^\{ match: \[(.*)\], except: \[(.*)\] \}$/.exec(spec);
  if (m !== null) return parseList(m[1] as string).some((c) => inCidr(c, probe)) && !parseList(m[2] as string).some((c) => inCidr(c, probe));
  return parseList(spec).some((c) => inCidr(c, probe));
}

function portMatches(spec: string | undefined, port: number): boolean {
  if (spec === undefined) return true;
  return parseList(spec).some((item) => {
    const [lo, hi = lo] = item.split('-').map(Number) as [number, number?];
    return port >= lo && port <= (hi as number);
  });
}

const PROTO_NUMBERS: Record<string, number[]> = { tcp: [6], udp: [17], '[tcp, udp]': [6, 17], icmp: [1, 58] };

/** Does rule r, seen with the flow's ends in the given orientation, match the tuple? */
function oracleMatches(r: R, swapped: boolean, x: { proto: number; v6: boolean; s: number; d: number; sport: number; dport: number }, ignoreL4: boolean): boolean {
  const probes = x.v6 ? PROBE_V6 : PROBE_V4;
  const src = probes[x.s % probes.length] as string;
  const dst = probes[x.d % probes.length] as string;
  if (r.proto !== undefined && !(PROTO_NUMBERS[r.proto] as number[]).includes(x.proto)) return false;
  const portsOk = r.proto === 'tcp' || r.proto === 'udp' || r.proto === '[tcp, udp]';
  const [rs, rd] = swapped ? [r.dst, r.src] : [r.src, r.dst];
  if (!addrMatches(rs, src) || !addrMatches(rd, dst)) return false;
  if (ignoreL4 || !portsOk) return true;
  const [ps, pd] = swapped ? [r.dport, r.sport] : [r.sport, r.dport];
  return portMatches(ps, x.sport) && portMatches(pd, x.dport);
}

/** Orientations a rule's direction asks for: the flow as its initiator sent it, reversed, or both. */
const ORIENTATIONS: Record<string, boolean[]> = { from_initiator: [false], to_initiator: [true], either: [false, true] };

t.test('the compiled scope has one term per orientation the YAML direction asks for, in rule order', async (t) => {
  fc.assert(
    fc.property(fc.array(ruleArb, { minLength: 0, maxLength: 30 }), (rules) => {
      const scope = policy(policyText(rules)).scopes[0]!;
      const want = rules.flatMap((r, i) => (ORIENTATIONS[r.direction] as boolean[]).map((sw) => `${i}:${sw ? 1 : 0}`));
      const got = Array.from(scope.termRule, (rule, k) => `${rule}:${scope.termSwapped[k]}`);
      return JSON.stringify(want.sort()) === JSON.stringify([...got].sort()) && got.every((g, k) => k === 0 || Number(g.split(':')[0]) >= Number((got[k - 1] as string).split(':')[0]));
    }),
    { numRuns: 200 },
  );
  t.pass();
});

t.test('the index finds the first match an independent scan over the YAML rules finds (random policies)', async (t) => {
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
          const got = firstMatch(p, scope, v, x.from, f);
          let want = -1;
          for (let k = x.from; k < scope.termRule.length; k++) {
            if (oracleMatches(rules[scope.termRule[k] as number] as R, scope.termSwapped[k] === 1, x, ignoreL4)) {
              want = k;
              break;
            }
          }
          if (got !== want) throw new Error(`tuple ${JSON.stringify(x)} ignoreL4=${ignoreL4}: index says term ${got}, the YAML says ${want}\n${policyText(rules)}`);
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

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
