/**
 * `gwlb-inspector explain --policy FILE <flow>`: which scope and rule decide a flow, and why.
 *
 *   explain --policy p.yaml tcp 10.0.0.1:12345 93.184.216.34:443 [--sni NAME | --host NAME] [--endpoint vpce-…]
 *   explain --policy p.yaml tcp 10.0.0.1:12345 '->' 93.184.216.34:443       (the arrow quoted, or the shell redirects)
 *   explain --policy p.yaml --proto udp --src 10.0.0.1 --dst 10.0.0.2 --dport 53
 *   explain --policy p.yaml icmp 10.0.0.1 10.0.0.2 --icmp-type 8
 *   explain --policy p.yaml udp 10.0.0.1:5000 10.0.0.2:53 --fragment later   (a fragment of that flow's datagram)
 *
 * Exit status: 0 explained, 1 the policy is invalid (its problems are printed), 2 usage error.
 */
import { parseArgs } from 'node:util';
import { FirewallStage, PolicyLoadError } from '../firewall/stage.js';
import { ExplainInputError, type Explanation, type ExplainInput } from '../firewall/explain.js';
import { formatIssue, sortIssues } from '../policy/errors.js';
import { isError, parseProtocol, protocolName, TCP_FLAG_BITS } from '../policy/values.js';

const USAGE = `Usage: gwlb-inspector explain --policy FILE PROTO SRC[:PORT] DST[:PORT] [options]
       gwlb-inspector explain --policy FILE --proto P --src ADDR --dst ADDR [--sport N] [--dport N] [options]

Shows the scope and the rule that decide a new flow, the conditions that made it match, and the
earlier rules that did not match (with the first condition that failed).

  PROTO                tcp, udp, icmp, icmpv6, ... or a protocol number
  SRC, DST             addresses; IPv6 with a port as [2001:db8::1]:443. An arrow between them is
                       accepted when quoted ('->'); unquoted, the shell reads > as a redirection
  --endpoint VPCE      the GWLB endpoint id the flow arrives through (selects the scope)
  --sni NAME           the TLS server name the client sends
  --host NAME          the HTTP Host the client sends
  --icmp-type N        ICMP/ICMPv6 type (default 8, echo request)
  --icmp-code N        ICMP/ICMPv6 code (default 0)
  --flags LIST         TCP flags of the first packet, e.g. SYN or ACK,PSH (default SYN; ACK with --midstream)
  --midstream          a TCP packet of a flow the appliance never saw open (failover, expired flow):
                       judged in its own reading only; name rules get settings.names.on_unknown
  --fragment first|later
                       judge an IP fragment of a datagram of this flow: the first fragment (offset 0)
                       is judged by the rules; a later one follows the first fragment's verdict
  --json               the explanation as JSON

Example:
  gwlb-inspector explain --policy policies/default.yaml tcp 10.0.0.1:12345 93.184.216.34:443 --sni example.com`;

function parseHostPort(s: string): { addr: string; port: number | undefined } | undefined {
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  if (bracket !== null) return { addr: bracket[1] as string, port: bracket[2] === undefined ? undefined : Number(bracket[2]) };
  const colons = s.split(':').length - 1;
  if (colons === 1) {
    const [addr, port] = s.split(':') as [string, string];
    if (!/^\d{1,5}$/.test(port)) return undefined;
    return { addr, port: Number(port) };
  }
  return { addr: s, port: undefined };
}

function num(v: string | undefined, what: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > max) throw new ExplainInputError(`${what} must be a number 0-${max}, got "${v}"`);
  return Number(v);
}

/** Which fragment of a datagram `--fragment` asks about. */
export type FragmentRole = 'first' | 'later';

export interface FragmentExplanation {
  role: FragmentRole;
  /** What happens to the fragment: a later fragment passes or drops with its first fragment (no reset for it). */
  action: 'pass' | 'drop' | 'reject' | 'alert';
  why: string[];
}

// The transport header a first fragment must carry whole (src/flow/fragments.ts, RFC 1858 / RFC 3128 / RFC 7112).
const FIRST_FRAGMENT_HEADER: Readonly<Record<number, string>> = {
  6: 'the whole TCP header (20 bytes and its options)',
  17: 'the whole UDP header (8 bytes)',
  1: 'the ICMP type, code and checksum (8 bytes with the echo identifier)',
  58: 'the ICMPv6 type, code and checksum (8 bytes with the echo identifier)',
};

/** How a fragment of a datagram of the explained flow is judged, given the flow's decision. */
export function explainFragment(role: FragmentRole, input: ExplainInput, e: Explanation): FragmentExplanation {
  const decided = e.decision.action;
  const header = FIRST_FRAGMENT_HEADER[input.proto] ?? 'every header up to the upper-layer one';
  if (role === 'first') {
    return {
      role,
      action: decided,
      why: [
        'the first fragment (offset 0) carries the transport header: the rules judge it like any packet of the flow',
        `it must hold ${header}, or it and its whole datagram are dropped (tiny fragment, RFC 1858 / RFC 3128 / RFC 7112)`,
        `its verdict (${decided}) is recorded for its datagram: later fragments follow it`,
      ],
    };
  }
  const passes = decided === 'pass' || decided === 'alert';
  return {
    role,
    action: passes ? decided : 'drop',
    why: [
      'a later fragment has no transport header: the rules never judge it alone',
      `it follows its datagram's first fragment, which this flow's first fragment gets: ${decided}` + (decided === 'reject' ? ' (no reset is sent for a later fragment, RFC 1122 §3.2.2)' : ''),
      'it waits (held, within --fragment-memcap-bytes) when it arrives before the first fragment; dropped if that is not decided within --fragment-timeout-ms',
      'dropped with its whole datagram if it overlaps another fragment (RFC 1858 §4, RFC 5722)',
    ],
  };
}

export function parseExplainArgs(args: string[]): { policy: string; policyRoot: string | undefined; input: ExplainInput; json: boolean; fragment?: FragmentRole } {
  // "->" looks like an option to parseArgs: stand it in by a token that does not.
  const ARROW = '\u2192';
  const { values, positionals } = parseArgs({
    args: args.map((a) => (a === '->' ? ARROW : a)),
    allowPositionals: true,
    strict: true,
    options: {
      policy: { type: 'string' },
      'policy-root': { type: 'string' },
      proto: { type: 'string' },
      src: { type: 'string' },
      dst: { type: 'string' },
      sport: { type: 'string' },
      dport: { type: 'string' },
      endpoint: { type: 'string' },
      sni: { type: 'string' },
      host: { type: 'string' },
      'icmp-type': { type: 'string' },
      'icmp-code': { type: 'string' },
      flags: { type: 'string' },
      fragment: { type: 'string' },
      midstream: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  if (values.policy === undefined) throw new ExplainInputError('--policy FILE is required');
  let protoText = values.proto;
  let srcText = values.src;
  let dstText = values.dst;
  let sport = num(values.sport, '--sport', 65535);
  let dport = num(values.dport, '--dport', 65535);
  if (positionals.length > 0) {
    // PROTO SRC DST, or PROTO SRC -> DST (the arrow quoted in a shell: a bare > redirects output).
    const pos = positionals.length === 4 && (positionals[2] === ARROW || positionals[2] === 'to') ? [positionals[0], positionals[1], positionals[3]] : positionals;
    if (pos.length !== 3) throw new ExplainInputError(`expected "PROTO SRC DST", got "${positionals.join(' ').replaceAll(ARROW, '->')}"`);
    protoText = pos[0];
    const s = parseHostPort(pos[1] as string);
    const d = parseHostPort(pos[2] as string);
    if (s === undefined || d === undefined) throw new ExplainInputError('addresses are ADDR, ADDR:PORT or [IPv6]:PORT');
    srcText = s.addr;
    dstText = d.addr;
    sport = s.port ?? sport;
    dport = d.port ?? dport;
  }
  if (protoText === undefined || srcText === undefined || dstText === undefined) throw new ExplainInputError('give a flow: PROTO SRC -> DST, or --proto, --src and --dst');
  const proto = parseProtocol(/^\d+$/.test(protoText) ? Number(protoText) : protoText);
  if (isError(proto)) throw new ExplainInputError(proto.error);
  if (proto === 'any') throw new ExplainInputError('give a concrete protocol, not any');
  const input: ExplainInput = { proto, src: srcText, dst: dstText };
  if (sport !== undefined) input.srcPort = sport;
  if (dport !== undefined) input.dstPort = dport;
  if (values.endpoint !== undefined) input.endpoint = values.endpoint;
  if (values.sni !== undefined) input.sni = values.sni;
  if (values.host !== undefined) input.host = values.host;
  if (values.midstream === true) input.midstream = true;
  const it = num(values['icmp-type'], '--icmp-type', 255);
  const ic = num(values['icmp-code'], '--icmp-code', 255);
  if (it !== undefined) input.icmpType = it;
  if (ic !== undefined) input.icmpCode = ic;
  if (values.flags !== undefined) {
    let f = 0;
    for (const name of values.flags.split(/[,+|]/)) {
      const bit = TCP_FLAG_BITS[name.trim().toUpperCase()];
      if (bit === undefined) throw new ExplainInputError(`unknown TCP flag "${name}"; flags are ${Object.keys(TCP_FLAG_BITS).join(', ')}`);
      f |= bit;
    }
    input.tcpFlags = f;
  }
  const parsed: { policy: string; policyRoot: string | undefined; input: ExplainInput; json: boolean; fragment?: FragmentRole } = {
    policy: values.policy,
    policyRoot: values['policy-root'],
    input,
    json: values.json === true,
  };
  if (values.fragment !== undefined) {
    if (values.fragment !== 'first' && values.fragment !== 'later') throw new ExplainInputError(`--fragment is first or later, got "${values.fragment}"`);
    parsed.fragment = values.fragment;
  }
  return parsed;
}

function endpointText(addr: string, port: number | undefined): string {
  const a = addr.includes(':') ? `[${addr}]` : addr;
  return port === undefined ? addr : `${a}:${port}`;
}

export function formatExplanation(policy: string, input: ExplainInput, e: Explanation, fragment?: FragmentExplanation): string {
  const lines: string[] = [];
  const pad = (k: string): string => k.padEnd(10);
  let flow = `${protocolName(input.proto)} ${endpointText(input.src, input.srcPort)} -> ${endpointText(input.dst, input.dstPort)}`;
  if (input.sni !== undefined) flow += `  sni ${input.sni}`;
  if (input.host !== undefined) flow += `  host ${input.host}`;
  if (input.endpoint !== undefined) flow += `  via ${input.endpoint}`;
  if (input.midstream === true) flow += '  (mid-stream: no SYN seen)';
  lines.push(`${pad('policy')}${policy}`);
  lines.push(`${pad('flow')}${flow}`);
  lines.push(`${pad('scope')}${e.scope.name} — ${e.scope.why}`);
  const d = e.decision;
  const action = d.action.toUpperCase();
  if (d.rule === null) {
    lines.push(`${pad('decision')}${action} by the default action of scope "${e.scope.name}" (${e.scope.origin.file}:${e.scope.origin.line}:${e.scope.origin.col})`);
  } else {
    const where = `#${d.rule.position} in scope "${e.scope.name}", ${d.rule.file}:${d.rule.line}:${d.rule.col}`;
    const how =
      d.by === 'unreadable_name'
        ? `because rule "${d.rule.name}" needs a server name and none is readable`
        : d.by === 'unknown_name'
          ? `because rule "${d.rule.name}" needs a server name and a mid-stream flow has none`
          : `by rule "${d.rule.name}"`;
    lines.push(`${pad('decision')}${action} ${how} (${where})`);
  }
  e.because.forEach((b, i) => lines.push(`${pad(i === 0 ? 'because' : '')}${b}`));
  if (e.midstream !== undefined) lines.push(`${pad('midstream')}packet ${e.midstream.packet.toUpperCase()}, ${e.midstream.establishes ? 'flow established' : 'nothing cached'}: ${e.midstream.why}`);
  e.earlier.forEach((x, i) => lines.push(`${pad(i === 0 ? 'skipped' : '')}#${x.rule.position} ${x.rule.name} (${x.rule.file}:${x.rule.line}:${x.rule.col}): ${x.failed}`));
  for (const n of e.notes) lines.push(`${pad('note')}${n}`);
  if (fragment !== undefined) {
    lines.push(`${pad('fragment')}${fragment.role === 'first' ? 'FIRST' : 'LATER'} fragment of a datagram of this flow: ${fragment.action.toUpperCase()}`);
    for (const w of fragment.why) lines.push(`${pad('')}${w}`);
  }
  if (!e.fastPathAgrees) lines.push(`${pad('WARNING')}the packet path's rule index disagrees with this explanation: please report this bug`);
  return lines.join('\n');
}

export async function runExplain(args: string[], out: (s: string) => void): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    out(USAGE);
    return 0;
  }
  let parsed;
  try {
    parsed = parseExplainArgs(args);
  } catch (err) {
    out(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  let stage: FirewallStage;
  try {
    stage = FirewallStage.fromFile(parsed.policy, {}, parsed.policyRoot);
  } catch (err) {
    if (!(err instanceof PolicyLoadError)) throw err;
    for (const i of sortIssues(err.issues)) out(formatIssue(i));
    out(`${parsed.policy}: invalid; fix it first (gwlb-inspector validate ${parsed.policy})`);
    return 1;
  }
  let e: Explanation;
  try {
    e = stage.explain(parsed.input);
  } catch (err) {
    if (!(err instanceof ExplainInputError)) throw err;
    out(`${err.message}\n\n${USAGE}`);
    return 2;
  }
  const fragment = parsed.fragment === undefined ? undefined : explainFragment(parsed.fragment, parsed.input, e);
  if (parsed.json) out(JSON.stringify(fragment === undefined ? e : { ...e, fragment }, null, 2));
  else out(formatExplanation(parsed.policy, parsed.input, e, fragment));
  return e.fastPathAgrees ? 0 : 1;
}
