/**
 * HoldStore (src/pipeline/hold.ts): the bytes waiting for a stage's decision are bounded per worker (memcap) and
 * per flow, come back in arrival order as copies, and expire by the holding stage's own budget.
 */
import t from 'tap';
import { HoldStore, HOLD_PACKET_OVERHEAD_BYTES as O, HOLD_REFUSED } from '../../src/pipeline/hold.js';

const buf = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');

t.test('held packets are copies, returned in arrival order, and the accounting returns to zero', async (t) => {
  const h = new HoldStore(100 * O, 10);
  t.equal(h.hold(7, 0, buf, 0, 4, 1, 2, 3, 100), HOLD_REFUSED.OK);
  t.equal(h.hold(7, 0, buf, 10, 6, 1, 2, 3, 101), HOLD_REFUSED.OK);
  t.equal(h.hold(8, 1, buf, 20, 3, 4, 5, 6, 102), HOLD_REFUSED.OK);
  t.equal(h.bytes, 13 + 3 * O, 'payload plus the per-packet bookkeeping charge');
  t.equal(h.packets, 3);
  buf.write('XXXX', 0); // the receive slot is reused: the hold must not see it
  const seven = h.take(7);
  t.same(seven.map((p) => p.data.toString()), ['0123', 'abcdef']);
  t.same([seven[0]?.localAddr, seven[0]?.gwlbAddr, seven[0]?.gwlbPort], [1, 2, 3]);
  t.equal(h.has(7), false);
  t.same(h.take(7), [], 'taking twice yields nothing');
  t.equal(h.bytes, 3 + O);
  t.equal(h.packets, 1);
  t.equal(h.take(8).length, 1);
  t.equal(h.bytes, 0);
  t.equal(h.packets, 0);
  buf.write('0123', 0);
});

t.test('the memcap refuses a hold that would exceed it, across flows, and frees room when taken', async (t) => {
  const h = new HoldStore(10 + 2 * O, 100);
  t.equal(h.hold(1, 0, buf, 0, 6, 0, 0, 0, 0), HOLD_REFUSED.OK);
  t.equal(h.hold(2, 0, buf, 0, 5, 0, 0, 0, 0), HOLD_REFUSED.MEMCAP, '6 + 5 > 10 (plus the charge of both)');
  t.equal(h.has(2), false, 'a refused hold creates nothing');
  t.equal(h.hold(2, 0, buf, 0, 4, 0, 0, 0, 0), HOLD_REFUSED.OK, '6 + 4 = 10 fits exactly');
  h.take(1);
  t.equal(h.hold(3, 0, buf, 0, 6, 0, 0, 0, 0), HOLD_REFUSED.OK, 'room again after a take');
});

t.test('a flow holds at most maxPacketsPerFlow packets', async (t) => {
  const h = new HoldStore(1 << 20, 2);
  t.equal(h.hold(5, 0, buf, 0, 1, 0, 0, 0, 0), HOLD_REFUSED.OK);
  t.equal(h.hold(5, 0, buf, 1, 1, 0, 0, 0, 0), HOLD_REFUSED.OK);
  t.equal(h.hold(5, 0, buf, 2, 1, 0, 0, 0, 0), HOLD_REFUSED.FLOW_LIMIT);
  t.equal(h.packets, 2);
  t.equal(h.hold(6, 0, buf, 2, 1, 0, 0, 0, 0), HOLD_REFUSED.OK, 'other flows are not affected');
});

t.test('holds expire by the budget of the stage that holds them, timed from the first packet held', async (t) => {
  const h = new HoldStore(1 << 20, 100);
  h.hold(1, 0, buf, 0, 1, 0, 0, 0, 1000); // stage 0: 100 ms budget
  h.hold(1, 0, buf, 0, 1, 0, 0, 0, 1090); // a later packet does not restart the clock
  h.hold(2, 1, buf, 0, 1, 0, 0, 0, 1000); // stage 1: 500 ms budget
  const budget = (stage: number): number => (stage === 0 ? 100 : 500);
  const out: { flow: number; stage: number }[] = [];
  h.expired(1099, budget, out);
  t.same(out, [], 'nothing before 100 ms');
  h.expired(1100, budget, out);
  t.same(out, [{ flow: 1, stage: 0 }], 'stage 0 flow at exactly its budget');
  h.expired(1600, budget, out);
  t.same(out.sort((a, b) => a.flow - b.flow), [{ flow: 1, stage: 0 }, { flow: 2, stage: 1 }], 'the output list is refilled, not appended');
});
