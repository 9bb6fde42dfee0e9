/**
 * LoadedPolicy (validated plain data) → CompiledPolicy (matchers for the packet path), once per load.
 *
 * Set references are expanded, address and port sets become merged ranges (exclusions subtracted exactly), each
 * scope's rules become a RuleIndex (firewall/rule-index.ts) and per-rule checks for what the index does not
 * cover (ICMP type/code, TCP flags, server names). Actions become the numeric ACTION codes of the stage contract.
 *
 * Compiling a policy that load.ts accepted does not fail; if it does, that is our bug, reported as an issue (so a
 * worker keeps its running policy) rather than thrown.
 */
import { parseEndpointId } from '../geneve/codec.js';
import { ACTION, type Action } from '../pipeline/stage.js';
import { DomainSet } from '../match/domain-set.js';
import { AddressSet, allV6, isAllAddresses, mergeBigRanges, mergeRanges, NumberSet, subtractBigRanges, subtractRanges, V4_MAX, type AddressRanges, type Range } from '../match/ranges.js';
import { RuleIndex, type RuleIndexStats, type TermSpec } from '../match/rule-index.js';
import { POLICY_ISSUE, type PolicyIssue } from './errors.js';
import type { LoadedPolicy, LoadedRule, Origin, SpecValue } from './load.js';
import type { ActionName, PolicySettings, RuleOutput } from './schema.js';
import { cidrRange4, cidrRange6, V6_MAPPED_HI, V6_MAPPED_LO, isError, parseAddressItem, parseDomainItem, parseProtocol, parseRangeItem, TCP_FLAG_BITS } from './values.js';

export const ACTION_CODE: Readonly<Record<ActionName, Action>> = Object.freeze({
  pass: ACTION.PASS,
  drop: ACTION.DROP,
  reject: ACTION.REJECT,
  alert: ACTION.ALERT,
});

/** Which client name a rule needs. */
export const NAME_KIND = { NONE: 0, SNI: 1, HOST: 2, ANY: 3 } as const;
export type NameKind = (typeof NAME_KIND)[keyof typeof NAME_KIND];

export const DIRECTION_MODE = { FROM_INITIATOR: 0, TO_INITIATOR: 1, EITHER: 2 } as const;

export const EXCEPTION = { PASS_PACKET: 0, DROP_PACKET: 1, DROP_FLOW: 2, REJECT_FLOW: 3 } as const;
export type ExceptionPolicy = (typeof EXCEPTION)[keyof typeof EXCEPTION];
const EXCEPTION_CODE = {
  pass_packet: EXCEPTION.PASS_PACKET,
  drop_packet: EXCEPTION.DROP_PACKET,
  drop_flow: EXCEPTION.DROP_FLOW,
  reject_flow: EXCEPTION.REJECT_FLOW,
} as const satisfies Readonly<Record<string, ExceptionPolicy>>;

/** on_unreadable: an action, or NEXT_RULE (the name condition simply does not match). */
export const UNREADABLE_NEXT_RULE = -1;

export interface CompiledRule {
  /** Global rule id: index in CompiledPolicy.rules (what the flow table stores as ruleId). */
  readonly id: number;
  /** Position in its scope, 0-based. */
  readonly position: number;
  readonly scope: number;
  readonly name: string;
  readonly action: Action;
  readonly actionName: ActionName;
  readonly origin: Origin;
  /** Logs per second; 0 = not logged. */
  readonly logPerS: number;
  readonly direction: number;
  readonly proto: Uint8Array | null;
  readonly src: AddressSet | null;
  readonly dst: AddressSet | null;
  readonly srcPorts: NumberSet | null;
  readonly dstPorts: NumberSet | null;
  readonly icmpType: NumberSet | null;
  readonly icmpCode: NumberSet | null;
  readonly flagsSet: number;
  readonly flagsClear: number;
  readonly nameKind: NameKind;
  readonly names: DomainSet | null;
  /** The rule as written (for explain). */
  readonly spec: RuleOutput;
}

export interface CompiledScope {
  readonly index: number;
  readonly name: string;
  readonly defaultAction: Action;
  readonly defaultActionName: ActionName;
  readonly defaultLogPerS: number;
  readonly origin: Origin;
  /** Global rule ids of this scope's enabled rules, in order. */
  readonly ruleIds: Int32Array;
  /** Term → global rule id (terms are in rule order; `either` rules have two). */
  readonly termRule: Int32Array;
  /** Term → 1 when its addresses/ports are the rule's swapped (to_initiator reading). */
  readonly termSwapped: Uint8Array;
  readonly matcher: RuleIndex;
  readonly endpoints: string[];
}

export interface CompiledSettings {
  midstreamPickup: boolean;
  onMidstream: ExceptionPolicy;
  onInvalid: ExceptionPolicy;
  namesMaxBytes: number;
  namesMaxWaitMs: number;
  namesMaxPendingFlows: number;
  /** An ACTION code, or UNREADABLE_NEXT_RULE. */
  onUnreadable: Action | typeof UNREADABLE_NEXT_RULE;
  onMemcap: Action;
  onUnknown: Action;
  onAnomaly: ExceptionPolicy;
  logMaxPerS: number;
}

export interface CompiledStats {
  rules: number;
  scopes: number;
  terms: number;
  indexBytes: number;
  compileMs: number;
  perScope: (RuleIndexStats & { name: string })[];
}

export interface CompiledPolicy {
  readonly root: string;
  readonly settings: CompiledSettings;
  readonly rules: CompiledRule[];
  readonly scopes: CompiledScope[];
  readonly stats: CompiledStats;
  /** Scope index for a GWLB endpoint id (hi/lo halves as decoded); 0 (default scope) when not listed. */
  scopeFor(hasEndpoint: boolean, hi: number, lo: number): number;
  /** Why scopeFor chose what it chose (explain). */
  readonly endpointScopes: ReadonlyMap<string, number>;
}

export type CompileResult = { ok: true; policy: CompiledPolicy } | { ok: false; issues: PolicyIssue[] };

export function compilePolicy(loaded: LoadedPolicy): CompileResult {
  const t0 = performance.now();
  try {
    const c = new Compiler(loaded);
    const policy = c.compile(t0);
    return { ok: true, policy };
  } catch (err) {
    return {
      ok: false,
      issues: [
        {
          code: POLICY_ISSUE.LIMIT,
          severity: 'error',
          file: loaded.root,
          line: 0,
          col: 0,
          path: [],
          message: `the policy could not be compiled (an internal error; please report it): ${(err as Error).message}`,
          includedFrom: [],
        },
      ],
    };
  }
}

class Compiler {
  private readonly loaded: LoadedPolicy;
  private readonly addrMemo = new Map<string, AddressRanges>();
  private readonly portMemo = new Map<string, Range[]>();
  private readonly domainMemo = new Map<string, DomainSet>();

  constructor(loaded: LoadedPolicy) {
    this.loaded = loaded;
  }

  compile(t0: number): CompiledPolicy {
    const s = this.loaded.settings;
    const settings = compileSettings(s);
    const rules: CompiledRule[] = [];
    const scopes: CompiledScope[] = [];
    const endpointScopes = new Map<string, number>();
    const byLo = new Map<number, { hi: number; scope: number }[]>();

    this.loaded.scopes.forEach((ls, si) => {
      const ruleIds: number[] = [];
      const terms: TermSpec[] = [];
      const termRule: number[] = [];
      const termSwapped: number[] = [];
      for (const lr of ls.rules) {
        if (!lr.rule.enabled) continue;
        const rule = this.rule(lr, rules.length, ruleIds.length, si, settings);
        rules.push(rule);
        ruleIds.push(rule.id);
        const fwd: TermSpec = { proto: rule.proto, src: this.addrOf(lr.rule.src), dst: this.addrOf(lr.rule.dst), sport: this.portsOf(lr.rule.src_ports), dport: this.portsOf(lr.rule.dst_ports) };
        const rev: TermSpec = { proto: fwd.proto, src: fwd.dst, dst: fwd.src, sport: fwd.dport, dport: fwd.sport };
        if (rule.direction !== DIRECTION_MODE.TO_INITIATOR) {
          terms.push(fwd);
          termRule.push(rule.id);
          termSwapped.push(0);
        }
        if (rule.direction !== DIRECTION_MODE.FROM_INITIATOR) {
          terms.push(rev);
          termRule.push(rule.id);
          termSwapped.push(1);
        }
      }
      for (const e of ls.endpoints) {
        const id = parseEndpointId(e);
        if (id === undefined) continue;
        endpointScopes.set(e, si);
        const list = byLo.get(id.lo) ?? [];
        list.push({ hi: id.hi, scope: si });
        byLo.set(id.lo, list);
      }
      scopes.push({
        index: si,
        name: ls.name,
        defaultAction: ACTION_CODE[ls.defaultAction],
        defaultActionName: ls.defaultAction,
        defaultLogPerS: logRate(ls.defaultLog, ls.defaultAction !== 'pass', settings.logMaxPerS),
        origin: ls.origin,
        ruleIds: Int32Array.from(ruleIds),
        termRule: Int32Array.from(termRule),
        termSwapped: Uint8Array.from(termSwapped),
        matcher: new RuleIndex(terms),
        endpoints: ls.endpoints,
      });
    });

    const perScope = scopes.map((sc) => ({ name: sc.name, ...sc.matcher.stats }));
    const stats: CompiledStats = {
      rules: rules.length,
      scopes: scopes.length,
      terms: perScope.reduce((a, b) => a + b.terms, 0),
      indexBytes: perScope.reduce((a, b) => a + b.bytes, 0),
      compileMs: performance.now() - t0,
      perScope,
    };
    const scopeFor = (has: boolean, hi: number, lo: number): number => {
      if (!has) return 0;
      const list = byLo.get(lo >>> 0);
      if (list === undefined) return 0;
      for (const e of list) if (e.hi === hi >>> 0) return e.scope;
      return 0;
    };
    return Object.freeze({ root: this.loaded.root, settings, rules, scopes, stats, scopeFor, endpointScopes });
  }

  private rule(lr: LoadedRule, id: number, position: number, scope: number, settings: CompiledSettings): CompiledRule {
    const r = lr.rule;
    let proto: Uint8Array | null = null;
    if (r.proto !== undefined) {
      const list = Array.isArray(r.proto) ? r.proto : [r.proto];
      const ps = list.map((p) => parseProtocol(p));
      if (!ps.includes('any')) {
        proto = new Uint8Array(256);
        for (const p of ps) if (typeof p === 'number') proto[p] = 1;
      }
    }
    // Name conditions are TCP-only: a rule with one and no proto means proto tcp.
    const nameSpec = r.sni ?? r.http_host ?? r.domain;
    const nameKind: NameKind = r.sni !== undefined ? NAME_KIND.SNI : r.http_host !== undefined ? NAME_KIND.HOST : r.domain !== undefined ? NAME_KIND.ANY : NAME_KIND.NONE;
    if (nameKind !== NAME_KIND.NONE && proto === null) {
      proto = new Uint8Array(256);
      proto[6] = 1;
    }
    const addr = (spec: SpecValue | undefined): AddressSet | null => {
      const a = this.addrOf(spec);
      return a === null ? null : new AddressSet(a);
    };
    const ports = (spec: SpecValue | undefined): NumberSet | null => {
      const p = this.portsOf(spec);
      return p === null ? null : new NumberSet(p);
    };
    const icmp = (spec: SpecValue | undefined): NumberSet | null => {
      const p = this.numbersOf(spec, 255);
      return p === null ? null : new NumberSet(p);
    };
    let flagsSet = 0;
    let flagsClear = 0;
    for (const f of r.tcp_flags?.set ?? []) flagsSet |= TCP_FLAG_BITS[f] ?? 0;
    for (const f of r.tcp_flags?.not_set ?? []) flagsClear |= TCP_FLAG_BITS[f] ?? 0;
    return Object.freeze({
      id,
      position,
      scope,
      name: r.name,
      action: ACTION_CODE[r.action],
      actionName: r.action,
      origin: lr.origin,
      logPerS: logRate(r.log, r.action !== 'pass', settings.logMaxPerS),
      direction: r.direction === 'to_initiator' ? DIRECTION_MODE.TO_INITIATOR : r.direction === 'either' ? DIRECTION_MODE.EITHER : DIRECTION_MODE.FROM_INITIATOR,
      proto,
      src: addr(r.src),
      dst: addr(r.dst),
      srcPorts: ports(r.src_ports),
      dstPorts: ports(r.dst_ports),
      icmpType: icmp(r.icmp_type),
      icmpCode: icmp(r.icmp_code),
      flagsSet,
      flagsClear,
      nameKind,
      names: nameSpec === undefined ? null : this.domainsOf(nameSpec as SpecValue),
      spec: r,
    });
  }

  // ---- set expansion -----------------------------------------------------------------------------------------

  /** null = any address. */
  addrOf(spec: SpecValue | undefined): AddressRanges | null {
    if (spec === undefined) return null;
    const r = this.addressRanges(spec, []);
    return isAllAddresses(r) ? null : r;
  }

  private addressRanges(spec: SpecValue, stack: string[]): AddressRanges {
    const { match, except } = splitSpec(spec);
    const inc: AddressRanges = { v4: [], v6: [] };
    const addItem = (item: string | number, into: AddressRanges): void => {
      const p = parseAddressItem(String(item));
      if (isError(p)) throw new Error(p.error);
      if (p.kind === 'any') {
        into.v4.push([0, V4_MAX]);
        for (const r of allV6()) into.v6.push(r);
      } else if (p.kind === 'set') {
        const s = this.addressSet(p.name, stack);
        for (const r of s.v4) into.v4.push(r);
        for (const r of s.v6) into.v6.push(r);
      } else if (p.cidr.v4) {
        into.v4.push(cidrRange4(p.cidr));
      } else {
        // IPv6 CIDRs never cover IPv4-mapped addresses: 0.0.0.0/0 is how a policy says "all IPv4".
        for (const r of subtractBigRanges([cidrRange6(p.cidr)], [[V6_MAPPED_LO, V6_MAPPED_HI]])) into.v6.push(r);
      }
    };
    if (match === undefined) addItem('any', inc);
    else for (const it of match) addItem(it, inc);
    let v4 = mergeRanges(inc.v4);
    let v6 = mergeBigRanges(inc.v6);
    if (except !== undefined) {
      const exc: AddressRanges = { v4: [], v6: [] };
      for (const it of except) addItem(it, exc);
      v4 = subtractRanges(v4, mergeRanges(exc.v4));
      v6 = subtractBigRanges(v6, mergeBigRanges(exc.v6));
    }
    return { v4, v6 };
  }

  private addressSet(name: string, stack: string[]): AddressRanges {
    const memo = this.addrMemo.get(name);
    if (memo !== undefined) return memo;
    const set = this.loaded.sets.addresses[name];
    if (set === undefined || stack.includes(name)) throw new Error(`address set ${name} is undefined or recursive`);
    const r = this.addressRanges(set.spec, [...stack, name]);
    this.addrMemo.set(name, r);
    return r;
  }

  /** null = any port. */
  portsOf(spec: SpecValue | undefined): Range[] | null {
    if (spec === undefined) return null;
    const r = this.numberRanges(spec, 65535, []);
    return r.length === 1 && (r[0] as Range)[0] === 0 && (r[0] as Range)[1] === 65535 ? null : r;
  }

  numbersOf(spec: SpecValue | undefined, max: number): Range[] | null {
    if (spec === undefined) return null;
    const r = this.numberRanges(spec, max, []);
    return r.length === 1 && (r[0] as Range)[0] === 0 && (r[0] as Range)[1] === max ? null : r;
  }

  private numberRanges(spec: SpecValue, max: number, stack: string[]): Range[] {
    const { match, except } = splitSpec(spec);
    const collect = (items: (string | number)[]): Range[] => {
      const out: Range[] = [];
      for (const it of items) {
        const p = parseRangeItem(it, 'value', max);
        if (isError(p)) throw new Error(p.error);
        if (p.kind === 'any') out.push([0, max]);
        else if (p.kind === 'range') out.push([p.lo, p.hi]);
        else for (const r of this.portSet(p.name, stack)) out.push(r);
      }
      return mergeRanges(out);
    };
    let inc = match === undefined ? [[0, max] as Range] : collect(match);
    if (except !== undefined) inc = subtractRanges(inc, collect(except));
    return inc;
  }

  private portSet(name: string, stack: string[]): Range[] {
    const memo = this.portMemo.get(name);
    if (memo !== undefined) return memo;
    const set = this.loaded.sets.ports[name];
    if (set === undefined || stack.includes(name)) throw new Error(`port set ${name} is undefined or recursive`);
    const r = this.numberRanges(set.spec, 65535, [...stack, name]);
    this.portMemo.set(name, r);
    return r;
  }

  domainsOf(spec: SpecValue, stack: string[] = []): DomainSet {
    const { match, except } = splitSpec(spec);
    const build = (items: (string | number)[]): DomainSet => {
      const d = new DomainSet();
      for (const it of items) {
        const p = parseDomainItem(String(it));
        if (isError(p)) throw new Error(p.error);
        if (p.kind === 'exact') d.addExact(p.name);
        else if (p.kind === 'subdomains') d.addSubdomains(p.name);
        else d.addSet(this.domainSet(p.name, stack));
      }
      return d;
    };
    const d = build(match ?? []);
    if (except !== undefined) d.setExcept(build(except));
    return d;
  }

  private domainSet(name: string, stack: string[]): DomainSet {
    const memo = this.domainMemo.get(name);
    if (memo !== undefined) return memo;
    const set = this.loaded.sets.domains[name];
    if (set === undefined || stack.includes(name)) throw new Error(`domain set ${name} is undefined or recursive`);
    const d = this.domainsOf(set.spec, [...stack, name]);
    this.domainMemo.set(name, d);
    return d;
  }
}

function splitSpec(spec: SpecValue): { match: (string | number)[] | undefined; except: (string | number)[] | undefined } {
  if (typeof spec === 'string' || typeof spec === 'number') return { match: [spec], except: undefined };
  if (Array.isArray(spec)) return { match: spec, except: undefined };
  return { match: spec.match, except: spec.except };
}

function logRate(log: RuleOutput['log'], byDefault: boolean, defaultRate: number): number {
  if (log === undefined) return byDefault ? defaultRate : 0;
  if (log === false) return 0;
  if (log === true) return defaultRate;
  return log.max_per_s;
}

function compileSettings(s: PolicySettings): CompiledSettings {
  return Object.freeze({
    midstreamPickup: s.tcp.midstream_pickup,
    onMidstream: EXCEPTION_CODE[s.tcp.on_midstream],
    onInvalid: EXCEPTION_CODE[s.tcp.on_invalid],
    namesMaxBytes: s.names.max_bytes,
    namesMaxWaitMs: s.names.max_wait_ms,
    namesMaxPendingFlows: s.names.max_pending_flows,
    onUnreadable: s.names.on_unreadable === 'next_rule' ? UNREADABLE_NEXT_RULE : ACTION_CODE[s.names.on_unreadable],
    onMemcap: ACTION_CODE[s.names.on_memcap],
    onUnknown: ACTION_CODE[s.names.on_unknown],
    onAnomaly: EXCEPTION_CODE[s.names.on_anomaly],
    logMaxPerS: s.log.max_per_s,
  });
}

