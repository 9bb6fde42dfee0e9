/**
 * Packets held while a stage decides their flow (docs/architecture.md §3: in block mode no byte covered by a blocking
 * verdict reaches its destination, so the bytes wait here). Each held packet is a copy of the whole GENEVE
 * datagram plus the outer addressing needed to send it later.
 *
 * Bounded twice: `maxBytes` across the worker (the memcap; the caller applies the --on-memcap exception policy
 * when a hold is refused) and `maxPacketsPerFlow`. Keyed by flow index (numeric Map keys: no string keys).
 * The memcap charges each packet its length plus HOLD_PACKET_OVERHEAD_BYTES, so that many tiny packets cannot
 * make the memory held several times the memcap.
 */
export interface HeldPacket {
  readonly data: Buffer;
  readonly localAddr: number;
  readonly gwlbAddr: number;
  readonly gwlbPort: number;
}

interface HeldFlow {
  packets: HeldPacket[];
  /** Bytes charged to the memcap: packet lengths plus HOLD_PACKET_OVERHEAD_BYTES each. */
  bytes: number;
  /** Monotonic ms when the first packet of this hold was taken. */
  sinceMs: number;
  /** Index in the chain of the stage that asked for the hold. */
  stage: number;
}

/**
 * Memory one held packet costs beyond its bytes: the Buffer and HeldPacket objects, its list slot, its flow's
 * share of the per-flow entry, allocator rounding. Measured (Node 20, RSS after GC, 200,000 held 60-byte
 * packets) at ~300 bytes with 64 packets per flow and ~540 with one per flow; charged as 512.
 */
export const HOLD_PACKET_OVERHEAD_BYTES = 512;

export const HOLD_REFUSED = {
  OK: 0,
  MEMCAP: 1,
  FLOW_LIMIT: 2,
} as const;

export class HoldStore {
  readonly maxBytes: number;
  readonly maxPacketsPerFlow: number;
  private readonly flows = new Map<number, HeldFlow>();
  /** Bytes charged to the memcap (lengths plus per-packet overhead), what /stats reports as held_bytes_now. */
  bytes = 0;
  packets = 0;

  constructor(maxBytes: number, maxPacketsPerFlow: number) {
    this.maxBytes = maxBytes;
    this.maxPacketsPerFlow = maxPacketsPerFlow;
  }

  /**
   * Charges `cost` bytes of another hold (the content holds, src/pipeline/content-holds.ts) to this worker's one
   * memcap; false (nothing charged) when it would exceed it.
   */
  charge(cost: number, packets: number): boolean {
    if (this.bytes + cost > this.maxBytes) return false;
    this.bytes += cost;
    this.packets += packets;
    return true;
  }

  refund(cost: number, packets: number): void {
    this.bytes -= cost;
    this.packets -= packets;
  }

  has(flow: number): boolean {
    return this.flows.has(flow);
  }

  /** Copies buf[off, off+len) into the flow's hold. Returns a HOLD_REFUSED code. */
  hold(flow: number, stage: number, buf: Buffer, off: number, len: number, localAddr: number, gwlbAddr: number, gwlbPort: number, nowMs: number): number {
    const cost = len + HOLD_PACKET_OVERHEAD_BYTES;
    if (this.bytes + cost > this.maxBytes) return HOLD_REFUSED.MEMCAP;
    let held = this.flows.get(flow);
    if (held === undefined) {
      held = { packets: [], bytes: 0, sinceMs: nowMs, stage };
      this.flows.set(flow, held);
    } else if (held.packets.length >= this.maxPacketsPerFlow) {
      return HOLD_REFUSED.FLOW_LIMIT;
    }
    const data = Buffer.allocUnsafe(len);
    buf.copy(data, 0, off, off + len);
    held.packets.push({ data, localAddr, gwlbAddr, gwlbPort });
    held.bytes += cost;
    this.bytes += cost;
    this.packets++;
    return HOLD_REFUSED.OK;
  }

  /** Removes and returns the flow's held packets in arrival order (empty when none). */
  take(flow: number): HeldPacket[] {
    const held = this.flows.get(flow);
    if (held === undefined) return EMPTY;
    this.flows.delete(flow);
    this.bytes -= held.bytes;
    this.packets -= held.packets.length;
    return held.packets;
  }

  /** Flows held longer than their holding stage's budget at `nowMs`, with that stage. */
  expired(nowMs: number, budgetMs: (stage: number) => number, out: { flow: number; stage: number }[]): void {
    out.length = 0;
    for (const [flow, held] of this.flows) if (nowMs - held.sinceMs >= budgetMs(held.stage)) out.push({ flow, stage: held.stage });
  }

}

const EMPTY: HeldPacket[] = [];
