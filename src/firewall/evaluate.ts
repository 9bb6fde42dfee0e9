/**
 * First-match evaluation of one scope: the rule index proposes candidate terms in rule order (addresses, ports,
 * protocol), and each candidate's remaining conditions are checked here (ICMP type/code, TCP flags, server name).
 * The first candidate that passes decides.
 *
 * Server names are read after the first packet, so evaluation can stop at a rule that needs one
 * (`facts.stoppedForName`); the stage then holds the flow and resumes from that term once the name is known.
 */
import { NAME_KIND, type CompiledPolicy, type CompiledRule, type CompiledScope } from '../policy/compile.js';
import { NAME_SOURCE } from './client-name.js';
import type { FlowView } from '../match/rule-index.js';

/** How rules with a server-name condition are treated in this evaluation. */
export const NAME_MODE = {
  /** The name may still be read (a new TCP connection): stop at the first such rule. */
  UNKNOWN: 0,
  /** facts.name / facts.nameSource hold the name read. */
  KNOWN: 1,
  /** No name can be read, and on_unreadable is next_rule: name rules do not match. */
  UNREADABLE_NEXT: 2,
  /** No name can be read and on_unreadable is an action: stop at the first such rule. */
  UNREADABLE_STOP: 3,
} as const;
export type NameMode = (typeof NAME_MODE)[keyof typeof NAME_MODE];

/** Per-evaluation inputs besides the 5-tuple; one reused object per stage. */
export interface PacketFacts {
  tcpFlags: number;
  icmpType: number;
  icmpCode: number;
  /** Non-first fragments: no transport header, so port, ICMP, flag and name conditions are not checked. */
  ignoreL4: boolean;
  nameMode: NameMode;
  name: string;
  nameSource: number;
  /** Output: the returned term stopped because its rule needs a name (nameMode UNKNOWN or UNREADABLE_STOP). */
  stoppedForName: boolean;
}

export function createPacketFacts(): PacketFacts {
  return { tcpFlags: 0, icmpType: -1, icmpCode: -1, ignoreL4: false, nameMode: NAME_MODE.UNKNOWN, name: '', nameSource: NAME_SOURCE.NONE, stoppedForName: false };
}

/** 1 = the rule's non-indexed conditions hold, 0 = they do not, 2 = it needs a name not known yet. */
export function checkRest(rule: CompiledRule, f: PacketFacts): 0 | 1 | 2 {
  if (f.ignoreL4) return 1;
  if (rule.icmpType !== null && !rule.icmpType.has(f.icmpType)) return 0;
  if (rule.icmpCode !== null && !rule.icmpCode.has(f.icmpCode)) return 0;
  if ((f.tcpFlags & rule.flagsSet) !== rule.flagsSet || (f.tcpFlags & rule.flagsClear) !== 0) return 0;
  if (rule.nameKind === NAME_KIND.NONE) return 1;
  switch (f.nameMode) {
    case NAME_MODE.UNKNOWN:
    case NAME_MODE.UNREADABLE_STOP:
      return 2;
    case NAME_MODE.UNREADABLE_NEXT:
      return 0;
    default:
      if (rule.nameKind === NAME_KIND.SNI && f.nameSource !== NAME_SOURCE.TLS) return 0;
      if (rule.nameKind === NAME_KIND.HOST && f.nameSource !== NAME_SOURCE.HTTP) return 0;
      return (rule.names as NonNullable<CompiledRule['names']>).has(f.name) ? 1 : 0;
  }
}

/** The first term ≥ from of `scope` matching view + facts; -1 when none (the default action applies). */
export function firstMatch(policy: CompiledPolicy, scope: CompiledScope, view: FlowView, from: number, f: PacketFacts): number {
  const m = scope.matcher;
  f.stoppedForName = false;
  m.prepare(view, f.ignoreL4);
  let t = m.next(from);
  while (t >= 0) {
    const rule = policy.rules[scope.termRule[t]!] as CompiledRule;
    const r = checkRest(rule, f);
    if (r !== 0) {
      f.stoppedForName = r === 2;
      return t;
    }
    t = m.next(t + 1);
  }
  return -1;
}

/** Reference implementation: every term checked in order, no index. Used by tests and the benchmark. */
export function firstMatchLinear(policy: CompiledPolicy, scope: CompiledScope, view: FlowView, from: number, f: PacketFacts): number {
  f.stoppedForName = false;
  for (let t = from; t < scope.termRule.length; t++) {
    const rule = policy.rules[scope.termRule[t]!] as CompiledRule;
    const swapped = scope.termSwapped[t] === 1;
    if (rule.proto !== null && rule.proto[view.proto & 0xff] !== 1) continue;
    const src = swapped ? rule.dst : rule.src;
    const dst = swapped ? rule.src : rule.dst;
    if (src !== null && !src.has(view.src)) continue;
    if (dst !== null && !dst.has(view.dst)) continue;
    if (!f.ignoreL4) {
      const sp = swapped ? rule.dstPorts : rule.srcPorts;
      const dp = swapped ? rule.srcPorts : rule.dstPorts;
      if (sp !== null && !sp.has(view.sport)) continue;
      if (dp !== null && !dp.has(view.dport)) continue;
    }
    const r = checkRest(rule, f);
    if (r === 0) continue;
    f.stoppedForName = r === 2;
    return t;
  }
  return -1;
}
