/**
 * Per-worker counters in a SharedArrayBuffer: the worker writes (single writer, plain stores), the main thread
 * reads for /stats, /metrics and /healthz without messages or locks. Float64 holds integers exactly to 2^53.
 *
 * Layout: the fixed counters of COUNTER, then one slot per GENEVE anomaly and one per inner-packet anomaly,
 * in the order of their names arrays, so a new anomaly code needs no edit here, then the fragment tracker's
 * FRAGMENT_COUNTER block (src/flow/fragments.ts), which the tracker writes through a view (fragmentCounters),
 * then the content inspector's blocks: CONTENT_COUNTER (src/content/counters.ts), the stream reassembly counters
 * (STREAM_COUNTER_NAMES) and the HTTP object counters (HTTP_COUNTER_NAMES), written the same way.
 */
import { GENEVE_ANOMALY_NAMES } from '../geneve/codec.js';
import { PACKET_ANOMALY_NAMES } from '../packet/decode.js';
import { FRAGMENT_COUNTER_NAMES, FRAGMENT_DROP_COUNTERS } from '../flow/fragments.js';
import { CONTENT_COUNTER, CONTENT_COUNTER_NAMES } from '../content/counters.js';
import { STREAM_COUNTER_NAMES } from '../stream/events.js';
import { HTTP_COUNTER_NAMES } from '../stream/http1.js';

export const COUNTER = {
  RX_PACKETS: 0,
  RX_BYTES: 1,
  TX_PACKETS: 2,
  TX_BYTES: 3,
  RX_BATCHES: 4,
  /** Datagrams the kernel dropped because our socket buffer was full (SO_RXQ_OVFL). */
  KERNEL_RX_DROPS: 5,
  /** Datagrams larger than the receive slot (SLOT_BYTES in engine.ts): dropped. */
  TRUNCATED: 6,
  /** Packets we could not hand to the kernel (ENOBUFS/EAGAIN or an error on send). */
  SEND_FAILED: 7,
  FLOWS_ACTIVE: 8,
  FLOW_CREATIONS: 9,
  FLOW_EVICTIONS: 10,
  FLOW_EXPIRATIONS: 11,
  /** Verdict outcomes per packet. */
  PASSED: 12,
  DROPPED_POLICY: 13,
  REJECTED: 14,
  ALERTED: 15,
  /** Packets the appliance originated (TCP RST, ICMP unreachable). */
  ORIGINATED: 16,
  HELD_PACKETS_NOW: 17,
  HELD_BYTES_NOW: 18,
  HOLD_RELEASED: 19,
  /** Held packets discarded because their flow was denied or its hold budget ran out with a blocking fail mode. */
  HOLD_DISCARDED: 20,
  /** Hold memcap reached: the packet followed --on-memcap. */
  MEMCAP_DROPPED: 21,
  MEMCAP_PASSED: 22,
  /** Inner packets that failed to decode and were passed per --on-malformed pass. */
  MALFORMED_PASSED: 23,
  /** Unexpected exceptions (our bugs), per packet or in timers and sends: counted, logged, never fatal. */
  INTERNAL_FAULTS: 24,
  SELF_TEST_PACKETS: 25,
  /** performance.timeOrigin + performance.now() of the worker's last heartbeat tick, ms since epoch. */
  HEARTBEAT_MS: 26,
  /** Inner IP fragments seen (first and later ones; the fragment_* counters say what became of them). */
  FRAGMENTS: 27,
  /** Policy generation the worker runs (increments on each successful reload). */
  POLICY_GENERATION: 28,
  /** A packet on a known 5-tuple started a new flow (new GWLB flow cookie, or SYN after close): state reset. */
  FLOW_RENEWALS: 29,
  /**
   * Loop guard: datagrams whose outer source is one of the appliance's own addresses (a return of ours, or
   * another process's probe) that are not our own self-test: dropped before decoding.
   */
  LOOP_DROPPED: 30,
  /** Datagrams from an outer source outside --gwlb-sources: dropped before decoding. */
  SOURCE_NOT_ALLOWED: 31,
  /** Packets whose processing threw (an internal fault) and that --on-internal-fault dropped / passed. */
  FAULT_DROPPED: 32,
  FAULT_PASSED: 33,
  /** Datagrams the kernel refused one by one (EACCES, EMSGSIZE, ...): skipped, the rest of the batch sent. Part of SEND_FAILED. */
  SEND_ERRORS: 34,
} as const;

const FIXED = Object.keys(COUNTER).length;

export const GENEVE_ANOMALY_BASE = FIXED;
export const INNER_ANOMALY_BASE = GENEVE_ANOMALY_BASE + GENEVE_ANOMALY_NAMES.length;
export const FRAGMENT_COUNTER_BASE = INNER_ANOMALY_BASE + PACKET_ANOMALY_NAMES.length;
export const CONTENT_COUNTER_BASE = FRAGMENT_COUNTER_BASE + FRAGMENT_COUNTER_NAMES.length;
export const STREAM_COUNTER_BASE = CONTENT_COUNTER_BASE + CONTENT_COUNTER_NAMES.length;
export const HTTP_COUNTER_BASE = STREAM_COUNTER_BASE + STREAM_COUNTER_NAMES.length;
export const COUNTER_SLOTS = HTTP_COUNTER_BASE + HTTP_COUNTER_NAMES.length;

/** The content inspector's, the stream reassembly's and the HTTP parser's counter blocks (shared memory, no copy). */
export function contentCounters(c: Float64Array): { content: Float64Array; stream: Float64Array; http: Float64Array } {
  return {
    content: c.subarray(CONTENT_COUNTER_BASE, STREAM_COUNTER_BASE),
    stream: c.subarray(STREAM_COUNTER_BASE, HTTP_COUNTER_BASE),
    http: c.subarray(HTTP_COUNTER_BASE, COUNTER_SLOTS),
  };
}

/** The fragment tracker's counter block inside the worker's counters (shared memory, no copy). */
export function fragmentCounters(c: Float64Array): Float64Array {
  return c.subarray(FRAGMENT_COUNTER_BASE, FRAGMENT_COUNTER_BASE + FRAGMENT_COUNTER_NAMES.length);
}

export function createCounters(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(COUNTER_SLOTS * Float64Array.BYTES_PER_ELEMENT));
}

/** Drop reasons with their counts (zero ones included, so dashboards see every reason). */
export function dropReasons(c: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 1; i < GENEVE_ANOMALY_NAMES.length; i++) out[`geneve_${(GENEVE_ANOMALY_NAMES[i] as string).toLowerCase()}`] = c[GENEVE_ANOMALY_BASE + i]!;
  for (let i = 1; i < PACKET_ANOMALY_NAMES.length; i++) out[`inner_${(PACKET_ANOMALY_NAMES[i] as string).toLowerCase()}`] = c[INNER_ANOMALY_BASE + i]!;
  out['truncated_datagram'] = c[COUNTER.TRUNCATED]!;
  out['kernel_rx_queue_full'] = c[COUNTER.KERNEL_RX_DROPS]!;
  out['send_failed'] = c[COUNTER.SEND_FAILED]!;
  out['policy_drop'] = c[COUNTER.DROPPED_POLICY]!;
  out['policy_reject'] = c[COUNTER.REJECTED]!;
  out['hold_discarded'] = c[COUNTER.HOLD_DISCARDED]!;
  out['memcap'] = c[COUNTER.MEMCAP_DROPPED]!;
  out['internal_fault'] = c[COUNTER.FAULT_DROPPED]!;
  out['loop_guard'] = c[COUNTER.LOOP_DROPPED]!;
  out['gwlb_source_not_allowed'] = c[COUNTER.SOURCE_NOT_ALLOWED]!;
  for (const i of FRAGMENT_DROP_COUNTERS) out[`fragment_${(FRAGMENT_COUNTER_NAMES[i] as string).toLowerCase()}`] = c[FRAGMENT_COUNTER_BASE + i]!;
  const k = CONTENT_COUNTER_BASE;
  out['content_dropped'] = c[k + CONTENT_COUNTER.PACKETS_DROPPED]!;
  out['content_discarded'] = c[k + CONTENT_COUNTER.DISCARDED]!;
  return out;
}

/** The fixed counters by lower-case name. */
export function namedCounters(c: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, index] of Object.entries(COUNTER)) out[name.toLowerCase()] = c[index]!;
  for (let i = 0; i < FRAGMENT_COUNTER_NAMES.length; i++) out[`fragment_${(FRAGMENT_COUNTER_NAMES[i] as string).toLowerCase()}`] = c[FRAGMENT_COUNTER_BASE + i]!;
  for (let i = 0; i < CONTENT_COUNTER_NAMES.length; i++) out[`content_${CONTENT_COUNTER_NAMES[i] as string}`] = c[CONTENT_COUNTER_BASE + i]!;
  for (let i = 0; i < STREAM_COUNTER_NAMES.length; i++) out[`stream_${STREAM_COUNTER_NAMES[i] as string}`] = c[STREAM_COUNTER_BASE + i]!;
  for (let i = 0; i < HTTP_COUNTER_NAMES.length; i++) out[`http_${HTTP_COUNTER_NAMES[i] as string}`] = c[HTTP_COUNTER_BASE + i]!;
  return out;
}

/** counters[index] += n (a function because noUncheckedIndexedAccess types typed-array reads as possibly undefined). */
export function bump(c: Float64Array, index: number, n = 1): void {
  c[index] = c[index]! + n;
}
