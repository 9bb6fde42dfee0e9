/**
 * "Which rule decides this flow, and why?" for `gwlb-inspector explain` and FirewallStage.explain.
 *
 * A slow, field-by-field walk over the scope's rules that records, for each rule before the deciding one, the
 * first condition that did not hold, and for the deciding rule every condition that did. The packet path's
 * indexed lookup is run on the same input and must agree (`fastPathAgrees`); a disagreement is a bug.
 */
import { parseEndpointId } from '../geneve/codec.js';
import { formatIp, tryParseIp } from '../packet/address.js';
import { IP_PROTO } from '../packet/types.js';
import { DIRECTION_MODE, EXCEPTION, NAME_KIND, UNREADABLE_NEXT_RULE, type CompiledPolicy, type CompiledRule, type CompiledScope } from '../policy/compile.js';
import type { Origin } from '../policy/load.js';
import type { ActionName } from '../policy/schema.js';
import { normalizeDomain, protocolName, TCP_FLAG_BITS } from '../policy/values.js';
import { ACTION_NAMES } from '../pipeline/stage.js';
import { NAME_SOURCE } from './client-name.js';
import { createPacketFacts, firstMatch, NAME_MODE } from './evaluate.js';
import { createFlowView } from '../match/rule-index.js';

export interface ExplainInput {
  /** IP protocol number. */
  proto: number;
  src: string;
  dst: string;
  srcPort?: number;
  dstPort?: number;
  icmpType?: number;
  icmpCode?: number;
  /** Flags of the first packet; default SYN for TCP (a connection opening). */
  tcpFlags?: number;
  /** GWLB endpoint id (vpce-…). */
  endpoint?: string;
  /** TLS SNI the client sends. */
  sni?: string;
  /** HTTP Host the client sends. */
  host?: string;
  /**
   * A TCP packet of a flow the appliance has not seen open (no SYN: a GWLB failover, an expired or evicted flow):
   * judged in its own reading (src = its sender = the client), name rules get names.on_unknown.
   */
  midstream?: boolean;
}

export interface RuleRef {
  name: string;
  id: number;
  /** 1-based position in its scope. */
  position: number;
  file: string;
  line: number;
  col: number;
}

export interface Explanation {
  scope: { index: number; name: string; why: string; origin: Origin };
  decision: { action: ActionName; by: 'rule' | 'default' | 'unreadable_name' | 'unknown_name'; rule: RuleRef | null };
  /** For a mid-stream packet: what happens to it and to its flow. */
  midstream?: { pickup: boolean; packet: ActionName; establishes: boolean; why: string };
  /** Conditions of the deciding rule that held (or why the default applies). */
  because: string[];
  /** Rules before the deciding one, each with the first condition that did not hold. */
  earlier: { rule: RuleRef; failed: string }[];
  notes: string[];
  /** The packet path's indexed lookup reached the same decision. */
  fastPathAgrees: boolean;
}

export class ExplainInputError extends Error {
  readonly code = 'EXPLAIN_INPUT';
}

function ref(rule: CompiledRule): RuleRef {
  return { name: rule.name, id: rule.id, position: rule.position + 1, file: rule.origin.file, line: rule.origin.line, col: rule.origin.col };
}

function written(spec: unknown): string {
  if (typeof spec === 'string' || typeof spec === 'number') return String(spec);
  if (Array.isArray(spec)) return `[${spec.join(', ')}]`;
  const o = spec as { match?: unknown[]; except?: unknown[] };
  return `${o.match === undefined ? 'any' : `[${o.match.join(', ')}]`}${o.except === undefined ? '' : ` except [${o.except.join(', ')}]`}`;
}

/** "is" for one plain value, "is in" for a list or a set. */
function isIn(spec: unknown): string {
  return (typeof spec === 'string' && !spec.startsWith('$') && spec !== 'any') || typeof spec === 'number' ? 'is' : 'is in';
}

function isNot(spec: unknown): string {
  return isIn(spec) === 'is' ? 'is not' : 'is not in';
}

interface Tuple {
  proto: number;
  src: Uint32Array;
  dst: Uint32Array;
  sport: number;
  dport: number;
}

export function explainFlow(policy: CompiledPolicy, input: ExplainInput): Explanation {
  const src = tryParseIp(input.src);
  const dst = tryParseIp(input.dst);
  if (src === undefined) throw new ExplainInputError(`source "${input.src}" is not an IP address`);
  if (dst === undefined) throw new ExplainInputError(`destination "${input.dst}" is not an IP address`);
  const isTcp = input.proto === IP_PROTO.TCP;
  const isIcmp = input.proto === IP_PROTO.ICMP || input.proto === IP_PROTO.ICMPV6;
  const midstream = input.midstream === true;
  if (midstream && !isTcp) throw new ExplainInputError('--midstream describes a TCP packet (proto tcp)');
  if (midstream && (input.sni !== undefined || input.host !== undefined)) {
    throw new ExplainInputError('a flow picked up mid-stream has no known start, so no name is read: drop --sni/--host');
  }
  const flags = input.tcpFlags ?? (isTcp ? (midstream ? TCP_FLAG_BITS.ACK! : TCP_FLAG_BITS.SYN!) : 0);
  const icmpType = isIcmp ? (input.icmpType ?? 8) : -1;
  const icmpCode = isIcmp ? (input.icmpCode ?? 0) : -1;
  const notes: string[] = [];
  if (input.sni !== undefined && input.host !== undefined) throw new ExplainInputError('give --sni or --host, not both (a client sends one or the other)');
  const name = input.sni ?? input.host;
  const nameSource = input.sni !== undefined ? NAME_SOURCE.TLS : input.host !== undefined ? NAME_SOURCE.HTTP : NAME_SOURCE.NONE;
  if (name !== undefined && !isTcp) throw new ExplainInputError('--sni and --host describe TCP connections (proto tcp)');

  // Scope.
  let scopeIdx = 0;
  let why: string;
  if (input.endpoint === undefined) {
    why = 'no endpoint id given: the default scope decides (as for packets without a GWLB endpoint option)';
  } else {
    const id = parseEndpointId(input.endpoint);
    if (id === undefined) throw new ExplainInputError(`"${input.endpoint}" is not a GWLB endpoint id (vpce- followed by 17 hex digits)`);
    scopeIdx = policy.scopeFor(true, id.hi, id.lo);
    why = scopeIdx === 0 ? `${input.endpoint.toLowerCase()} is not listed in any scope: the default scope decides` : `${input.endpoint.toLowerCase()} is listed in scope "${policy.scopes[scopeIdx]?.name}"`;
  }
  const scope = policy.scopes[scopeIdx] as CompiledScope;
  const t: Tuple = { proto: input.proto, src, dst, sport: input.srcPort ?? 0, dport: input.dstPort ?? 0 };
  const unreadable = policy.settings.onUnreadable;
  const unreadableNext = unreadable === UNREADABLE_NEXT_RULE;

  const earlier: { rule: RuleRef; failed: string }[] = [];
  let decision: Explanation['decision'] | undefined;
  let because: string[] = [];
  for (const id of scope.ruleIds) {
    const rule = policy.rules[id] as CompiledRule;
    const r = matchRule(rule, t, flags, icmpType, icmpCode);
    if (!r.ok) {
      earlier.push({ rule: ref(rule), failed: r.failed });
      continue;
    }
    if (rule.nameKind !== NAME_KIND.NONE) {
      const field = rule.nameKind === NAME_KIND.SNI ? 'sni' : rule.nameKind === NAME_KIND.HOST ? 'http_host' : 'domain';
      if (midstream) {
        const action = ACTION_NAMES[policy.settings.onUnknown] as ActionName;
        decision = { action, by: 'unknown_name', rule: ref(rule) };
        because = [...r.held, `${field}: the rule needs the server name; a flow picked up mid-stream has no known start, so settings.names.on_unknown applies: ${action}`];
        break;
      }
      if (name === undefined) {
        if (unreadable === UNREADABLE_NEXT_RULE) {
          earlier.push({ rule: ref(rule), failed: `${field}: no server name given (--sni/--host), and settings.names.on_unreadable is next_rule` });
          continue;
        }
        const action = ACTION_NAMES[unreadable] as ActionName;
        decision = { action, by: 'unreadable_name', rule: ref(rule) };
        because = [...r.held, `${field}: the rule needs the server name; with none readable settings.names.on_unreadable applies: ${action}`];
        notes.push('give --sni NAME or --host NAME to see the decision for a client that sends one');
        break;
      }
      if (rule.nameKind === NAME_KIND.SNI && nameSource !== NAME_SOURCE.TLS) {
        earlier.push({ rule: ref(rule), failed: `sni: the client sends an HTTP Host, not a TLS SNI` });
        continue;
      }
      if (rule.nameKind === NAME_KIND.HOST && nameSource !== NAME_SOURCE.HTTP) {
        earlier.push({ rule: ref(rule), failed: `http_host: the client sends a TLS SNI, not an HTTP Host` });
        continue;
      }
      const n = normalizeDomain(name);
      const hit = (rule.names as NonNullable<CompiledRule['names']>).why(n);
      if (hit === undefined) {
        earlier.push({ rule: ref(rule), failed: `${field}: ${n} ${isNot(rule.spec[field])} ${written(rule.spec[field])}` });
        continue;
      }
      r.held.push(`${field}: ${n} matches ${hit}${typeof rule.spec[field] === 'string' && String(rule.spec[field]).startsWith('$') ? ` (in ${String(rule.spec[field])})` : ''}`);
    }
    decision = { action: rule.actionName, by: 'rule', rule: ref(rule) };
    because = r.held.length > 0 ? r.held : ['the rule has no conditions: it matches every flow'];
    break;
  }
  if (decision === undefined) {
    decision = { action: scope.defaultActionName, by: 'default', rule: null };
    because = [`no rule of scope "${scope.name}" matches: its default_action applies`];
  }

  // The packet path's answer for the same input.
  const view = createFlowView();
  view.proto = t.proto;
  view.src.set(src);
  view.dst.set(dst);
  view.sport = t.sport;
  view.dport = t.dport;
  const f = createPacketFacts();
  f.tcpFlags = flags;
  f.icmpType = icmpType;
  f.icmpCode = icmpCode;
  f.nameMode = midstream ? NAME_MODE.UNREADABLE_STOP : name !== undefined ? NAME_MODE.KNOWN : unreadableNext ? NAME_MODE.UNREADABLE_NEXT : NAME_MODE.UNREADABLE_STOP;
  f.name = name === undefined ? '' : normalizeDomain(name);
  f.nameSource = nameSource;
  const term = firstMatch(policy, scope, view, 0, f);
  const fastRule = term < 0 ? -1 : scope.termRule[term]!;
  const fastPathAgrees = fastRule === (decision.rule?.id ?? -1) && (term < 0 || f.stoppedForName === (decision.by === 'unreadable_name' || decision.by === 'unknown_name'));

  let ms: Explanation['midstream'];
  if (midstream) {
    const s = policy.settings;
    if (!s.midstreamPickup) {
      const reset = s.onMidstream === EXCEPTION.REJECT_FLOW;
      ms = {
        pickup: false,
        packet: reset ? 'reject' : 'drop',
        establishes: false,
        why: `settings.tcp.midstream_pickup is false: every TCP packet without a known flow gets settings.tcp.on_midstream (${reset ? 'reject_flow: reset' : s.onMidstream === EXCEPTION.DROP_FLOW ? 'drop_flow' : 'drop_packet'}); the rules are not consulted`,
      };
    } else if (decision.action === 'pass' || decision.action === 'alert') {
      ms = { pickup: true, packet: decision.action, establishes: true, why: 'allowed in its own reading (src = its sender, taken as the client): the flow is established and its verdict cached for both directions' };
    } else {
      const reset = decision.by === 'unknown_name' && decision.action === 'reject';
      ms = {
        pickup: true,
        packet: reset ? 'reject' : 'drop',
        establishes: false,
        why: `denied in its own reading (src = its sender): this packet is ${reset ? 'reset' : 'dropped'} and nothing is cached, so the other side's packet is judged in its own reading in turn (the reverse reading is never tried for this packet)`,
      };
    }
    notes.push('judged as a packet without a known flow (--midstream): no SYN was seen, so its sender is taken as the client');
  }

  if (isTcp && !midstream && flags === TCP_FLAG_BITS.SYN) notes.push('evaluated as a new connection (first packet SYN); rules are evaluated once per flow and the verdict covers both directions');
  if (name === undefined && scope.ruleIds.some((id) => (policy.rules[id] as CompiledRule).nameKind !== NAME_KIND.NONE) && decision.by !== 'unreadable_name' && isTcp) {
    notes.push('some rules of this scope match server names; add --sni or --host to include them');
  }
  const e: Explanation = { scope: { index: scopeIdx, name: scope.name, why, origin: scope.origin }, decision, because, earlier, notes, fastPathAgrees };
  if (ms !== undefined) e.midstream = ms;
  return e;
}

/** Address/port/protocol/ICMP/flags conditions of one rule, in every reading its direction allows. */
function matchRule(rule: CompiledRule, t: Tuple, flags: number, icmpType: number, icmpCode: number): { ok: true; held: string[] } | { ok: false; failed: string } {
  const readings: boolean[] = rule.direction === DIRECTION_MODE.FROM_INITIATOR ? [false] : rule.direction === DIRECTION_MODE.TO_INITIATOR ? [true] : [false, true];
  let firstFail = '';
  for (const swapped of readings) {
    const r = matchReading(rule, t, swapped, flags, icmpType, icmpCode);
    if (r.ok) {
      if (rule.direction !== DIRECTION_MODE.FROM_INITIATOR) r.held.unshift(swapped ? 'direction: read with src = the responder (to_initiator)' : 'direction: read with src = the initiator');
      return r;
    }
    if (firstFail === '') firstFail = readings.length > 1 ? `${r.failed} (and the reverse reading fails too)` : r.failed;
  }
  return { ok: false, failed: firstFail };
}

function matchReading(rule: CompiledRule, t: Tuple, swapped: boolean, flags: number, icmpType: number, icmpCode: number): { ok: true; held: string[] } | { ok: false; failed: string } {
  const held: string[] = [];
  const spec = rule.spec;
  if (rule.proto !== null) {
    const p = spec.proto ?? 'tcp';
    if (rule.proto[t.proto] !== 1) return { ok: false, failed: `proto: ${protocolName(t.proto)} ${isNot(p)} ${written(p)}` };
    held.push(`proto: ${protocolName(t.proto)} ${isIn(p)} ${written(p)}`);
  }
  const fields: ['src' | 'dst', Uint32Array][] = [
    ['src', swapped ? t.dst : t.src],
    ['dst', swapped ? t.src : t.dst],
  ];
  for (const [field, addr] of fields) {
    const set = field === 'src' ? rule.src : rule.dst;
    if (set === null) continue;
    const label = swapped ? `${field} (the ${field === 'src' ? 'responder' : 'initiator'})` : field;
    if (!set.has(addr)) return { ok: false, failed: `${label}: ${formatIp(addr)} ${isNot(spec[field])} ${written(spec[field])}` };
    held.push(`${label}: ${formatIp(addr)} ${isIn(spec[field])} ${written(spec[field])}`);
  }
  const ports: ['src_ports' | 'dst_ports', number][] = [
    ['src_ports', swapped ? t.dport : t.sport],
    ['dst_ports', swapped ? t.sport : t.dport],
  ];
  for (const [field, port] of ports) {
    const set = field === 'src_ports' ? rule.srcPorts : rule.dstPorts;
    if (set === null) continue;
    if (!set.has(port)) return { ok: false, failed: `${field}: ${port} ${isNot(spec[field])} ${written(spec[field])}` };
    held.push(`${field}: ${port} ${isIn(spec[field])} ${written(spec[field])}`);
  }
  if (rule.icmpType !== null) {
    if (!rule.icmpType.has(icmpType)) return { ok: false, failed: `icmp_type: ${icmpType} ${isNot(spec.icmp_type)} ${written(spec.icmp_type)}` };
    held.push(`icmp_type: ${icmpType} ${isIn(spec.icmp_type)} ${written(spec.icmp_type)}`);
  }
  if (rule.icmpCode !== null) {
    if (!rule.icmpCode.has(icmpCode)) return { ok: false, failed: `icmp_code: ${icmpCode} ${isNot(spec.icmp_code)} ${written(spec.icmp_code)}` };
    held.push(`icmp_code: ${icmpCode} ${isIn(spec.icmp_code)} ${written(spec.icmp_code)}`);
  }
  if (rule.flagsSet !== 0 || rule.flagsClear !== 0) {
    if ((flags & rule.flagsSet) !== rule.flagsSet || (flags & rule.flagsClear) !== 0) return { ok: false, failed: `tcp_flags: ${flagNames(flags)} do not fit ${JSON.stringify(spec.tcp_flags)}` };
    held.push(`tcp_flags: ${flagNames(flags)} fit ${JSON.stringify(spec.tcp_flags)}`);
  }
  return { ok: true, held };
}

function flagNames(flags: number): string {
  const names = Object.entries(TCP_FLAG_BITS)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([n]) => n);
  return names.length === 0 ? 'no flags' : names.join('+');
}
