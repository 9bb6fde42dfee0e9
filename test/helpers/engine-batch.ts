/**
 * Drives a PacketEngine in-process as the worker does: datagrams laid into receive slots as recvBatch would (from
 * GWLB at 127.0.0.2 to 127.0.0.1), one processBatch, and what the engine sent, tx list first (the worker's flush
 * order). For tests of the content chain with real packet bytes.
 */
import { SLOT_BYTES, HEADROOM_BYTES, createRecvArrays, type PacketEngine } from '../../src/dataplane/engine.js';

export const GWLB_ADDR = 0x7f000002;
export const LOCAL_ADDR = 0x7f000001;

/** One receive batch; returns every datagram the engine sent for it, tx list first. */
export function runBatch(e: PacketEngine, datagrams: Buffer[], nowMs = 1000): Buffer[] {
  const buf = Buffer.alloc(Math.max(1, datagrams.length) * SLOT_BYTES);
  const meta = createRecvArrays(Math.max(1, datagrams.length));
  datagrams.forEach((d, i) => {
    d.copy(buf, i * SLOT_BYTES + HEADROOM_BYTES);
    meta.lens[i] = d.length;
    meta.srcAddr[i] = GWLB_ADDR;
    meta.srcPort[i] = 50000;
    meta.dstAddr[i] = LOCAL_ADDR;
  });
  e.txSend.count = 0;
  e.processBatch(buf, SLOT_BYTES, datagrams.length, meta, nowMs);
  const rx = Array.from({ length: e.rxSend.count }, (_, i) => Buffer.from(buf.subarray(e.rxSend.offs[i]!, e.rxSend.offs[i]! + e.rxSend.lens[i]!)));
  return [...drainTx(e), ...rx];
}

/** What the engine queued outside a batch (an async answer released or reset), emptied. */
export function drainTx(e: PacketEngine): Buffer[] {
  const out = Array.from({ length: e.txSend.count }, (_, i) => Buffer.from(e.txBuf.subarray(e.txSend.offs[i]!, e.txSend.offs[i]! + e.txSend.lens[i]!)));
  e.txSend.count = 0;
  return out;
}
