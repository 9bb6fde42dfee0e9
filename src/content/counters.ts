/**
 * Counters of the content inspector (src/content/inspector.ts), a block of the worker's shared counters
 * (src/dataplane/counters.ts), shown as content_* in /stats and /metrics.
 */
export const CONTENT_COUNTER = {
  /** Flows handed to the content stages. */
  FLOWS_STARTED: 0,
  /** TCP flows no content stage wanted (scope, port): never inspected. */
  FLOWS_NOT_WANTED: 1,
  /** Flows under inspection now (gauge). */
  FLOWS_ACTIVE: 2,
  /** --content-max-flows reached: the packet was dropped / passed uninspected (policy settings.stream.on_memcap). */
  FLOW_LIMIT_DROPPED: 3,
  FLOW_LIMIT_PASSED: 4,
  /** Packets held until the stages cleared their bytes, released later, discarded (flow denied or ended). */
  HELD: 5,
  RELEASED: 6,
  DISCARDED: 7,
  /** The hold memcap refused a packet: dropped / passed uninspected. */
  MEMCAP_DROPPED: 8,
  MEMCAP_PASSED: 9,
  /** Packets the stream's exception policies dropped (differing overlap, out of window, buffers full). */
  SEGMENTS_DROPPED: 10,
  /** Data after an accepted RST: dropped. */
  AFTER_RESET_DROPPED: 11,
  /** IP-fragmented TCP segments of inspected flows: dropped / passed uninspected (settings.stream.on_fragment). */
  FRAGMENTS_DROPPED: 12,
  FRAGMENTS_PASSED: 13,
  /** Holes that outlived the reassembly wait (settings.stream.on_hole_timeout decided). */
  HOLE_TIMEOUTS: 14,
  /** Stage hold budgets that ran out, by kind. */
  BUDGET_BYTES: 15,
  BUDGET_MS: 16,
  /** Flow verdicts of content stages. */
  VERDICT_PASS: 17,
  VERDICT_ALERT: 18,
  VERDICT_DROP: 19,
  VERDICT_REJECT: 20,
  /** Stream memcap bytes in use (gauge). */
  STREAM_MEMCAP_BYTES: 21,
  /** Packets dropped by the content layer: of a denied flow, or by an exception policy above. */
  PACKETS_DROPPED: 22,
  /** Incomplete HTTP heads inspected as opaque bytes after settings.stream.head_wait_ms (or a non-HTTP peer). */
  HEADS_ABANDONED: 23,
} as const;

export const CONTENT_COUNTER_NAMES: readonly string[] = Object.keys(CONTENT_COUNTER).map((k) => k.toLowerCase());
