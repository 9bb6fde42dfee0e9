/**
 * Packets of content-inspected flows waiting until every blocking content stage has cleared the bytes they carry
 * (docs/architecture.md §3.2). One FIFO per flow and direction: a packet leaves only after every packet of its
 * direction that arrived before it, so the receiver sees our releases in the order the sender sent them.
 *
 *   direction queue:  [ end=1448 ][ end=2896 ][ end=4344 ]  ← new packets join at the tail
 *                       released while end ≤ cleared(dir); the first one above it stops the walk
 *
 * `end` is the stream offset just past the packet's last byte (src/stream offsets, from ISN+1). Memory is charged
 * to the worker's one hold memcap (HoldStore.charge), per packet its length plus HOLD_PACKET_OVERHEAD_BYTES.
 */
import { HOLD_PACKET_OVERHEAD_BYTES, type HoldStore, type HeldPacket } from './hold.js';

export interface ContentHeldPacket extends HeldPacket {
  /** Stream offset just past the packet's bytes in its direction. */
  readonly end: number;
  /** Payload bytes it carries (what the stages' byte budgets count). */
  readonly payload: number;
  /** Monotonic ms when it was held. */
  readonly sinceMs: number;
}

export class DirectionQueue {
  private items: ContentHeldPacket[] = [];
  private head = 0;
  /** Payload bytes held (for the stages' byte budgets). */
  payloadBytes = 0;
  /** Bytes charged to the memcap. */
  chargedBytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  first(): ContentHeldPacket | undefined {
    return this.items[this.head];
  }

  push(p: ContentHeldPacket, cost: number): void {
    this.items.push(p);
    this.payloadBytes += p.payload;
    this.chargedBytes += cost;
  }

  /** Removes the first packet (the caller checked there is one). */
  shift(): ContentHeldPacket {
    const p = this.items[this.head] as ContentHeldPacket;
    this.items[this.head] = undefined as unknown as ContentHeldPacket;
    this.head++;
    this.payloadBytes -= p.payload;
    this.chargedBytes -= p.data.length + HOLD_PACKET_OVERHEAD_BYTES;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return p;
  }

  /** Empties the queue; returns how many packets were in it. */
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.payloadBytes = 0;
    this.chargedBytes = 0;
    return n;
  }
}

/** Copies a packet into a queue, charged to the worker's hold memcap; false when the memcap refuses it. */
export function holdCopy(
  store: HoldStore,
  q: DirectionQueue,
  buf: Buffer,
  off: number,
  len: number,
  end: number,
  payload: number,
  localAddr: number,
  gwlbAddr: number,
  gwlbPort: number,
  nowMs: number,
): boolean {
  const cost = len + HOLD_PACKET_OVERHEAD_BYTES;
  if (!store.charge(cost, 1)) return false;
  const data = Buffer.allocUnsafe(len);
  buf.copy(data, 0, off, off + len);
  q.push({ data, localAddr, gwlbAddr, gwlbPort, end, payload, sinceMs: nowMs }, cost);
  return true;
}

/** Returns a released or discarded packet's charge to the memcap. */
export function refundHeld(store: HoldStore, p: ContentHeldPacket): void {
  store.refund(p.data.length + HOLD_PACKET_OVERHEAD_BYTES, 1);
}
