/**
 * The hold memcap bounds memory, not only payload bytes: each held packet is charged its length plus
 * HOLD_PACKET_OVERHEAD_BYTES (regression: tiny packets were charged their length alone, so a 64 MiB memcap of
 * 60-byte packets held over a million packets and several hundred MB of objects).
 */
import t from 'tap';
import { HoldStore, HOLD_PACKET_OVERHEAD_BYTES, HOLD_REFUSED } from '../../src/pipeline/hold.js';

const PACKET = Buffer.alloc(60, 0x5a);

t.test('a memcap of N × (60 + overhead) bytes holds exactly N 60-byte packets', async (t) => {
  const N = 10;
  const store = new HoldStore(N * (PACKET.length + HOLD_PACKET_OVERHEAD_BYTES), 1000);
  let held = 0;
  for (let i = 0; i < 10 * N; i++) {
    const r = store.hold(i % 3, 0, PACKET, 0, PACKET.length, 1, 2, 3, 0);
    if (r === HOLD_REFUSED.OK) held++;
    else t.equal(r, HOLD_REFUSED.MEMCAP);
  }
  t.equal(held, N);
  t.equal(store.packets, N);
  t.equal(store.bytes, N * (PACKET.length + HOLD_PACKET_OVERHEAD_BYTES), 'bytes charged include the overhead');
  const taken = store.take(0).length + store.take(1).length + store.take(2).length;
  t.equal(taken, N);
  t.equal(store.bytes, 0, 'taking every hold returns every charged byte');
  t.equal(store.hold(7, 0, PACKET, 0, PACKET.length, 1, 2, 3, 0), HOLD_REFUSED.OK, 'room again');
});

t.test('the per-flow packet limit still applies below the memcap', async (t) => {
  const store = new HoldStore(1 << 20, 4);
  for (let i = 0; i < 4; i++) t.equal(store.hold(1, 0, PACKET, 0, PACKET.length, 1, 2, 3, 0), HOLD_REFUSED.OK);
  t.equal(store.hold(1, 0, PACKET, 0, PACKET.length, 1, 2, 3, 0), HOLD_REFUSED.FLOW_LIMIT);
});
