/**
 * Turns the firewall's log event (src/firewall/log.ts FirewallLogEvent, posted by a worker) into a schema
 * `flow_verdict`. The firewall's event carries a monotonic `nowMs`; the router stamps wall-clock time. Fields the
 * firewall does not know (attachment id, byte and packet counts) are null. The firewall's own rate limiter already
 * thinned its events: its `suppressed` count is carried over.
 *
 * The input crosses a worker boundary as `unknown`: every field is read with a type check, and an event without
 * a known action or addresses is refused (null) rather than written half-formed.
 */
import { ACTIONS, MAX_TEXT_CHARS } from './schema.js';
import type { UnstampedEvent } from './router.js';

type Action = (typeof ACTIONS)[number];

function str(v: unknown): string | null {
  return typeof v === 'string' ? v.slice(0, MAX_TEXT_CHARS) : null;
}

function int(v: unknown, max: number): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max ? v : null;
}

export function firewallVerdictEvent(raw: unknown): { event: UnstampedEvent; suppressed: number } | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const e = raw as Record<string, unknown>;
  const action = str(e.action);
  const src = str(e.src);
  const dst = str(e.dst);
  const proto = int(e.proto, 255);
  const reason = str(e.reason);
  if (action === null || !(ACTIONS as readonly string[]).includes(action) || src === null || dst === null || proto === null || reason === null) return null;
  const flow = typeof e.flow === 'number' || typeof e.flow === 'string' ? String(e.flow) : '';
  return {
    suppressed: int(e.suppressed, Number.MAX_SAFE_INTEGER) ?? 0,
    event: {
      kind: 'flow_verdict',
      flowId: flow,
      endpointId: str(e.endpointId),
      attachmentId: str(e.attachmentId),
      proto,
      src,
      srcPort: int(e.srcPort, 65535) ?? 0,
      dst,
      dstPort: int(e.dstPort, 65535) ?? 0,
      bytesToServer: null,
      bytesToClient: null,
      packetsToServer: null,
      packetsToClient: null,
      stage: 'firewall',
      action: action as Action,
      rule: str(e.rule),
      ruleSource: str(e.ruleSource),
      signature: null,
      detector: null,
      reason,
      direction: 'to_server',
      scope: str(e.scope),
      serverName: str(e.serverName),
      serverNameSource: e.serverNameSource === 'tls' || e.serverNameSource === 'http' ? e.serverNameSource : null,
    },
  };
}
