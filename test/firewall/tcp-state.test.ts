import t from 'tap';
import { FIN0, FIN1, MIDSTREAM, PHASE_MASK, REVERSED, TCP_EVENT, TCP_PHASE, fromClient, track } from '../../src/firewall/tcp-state.js';
import { TCP_FLAG } from '../../src/packet/types.js';

const { SYN, ACK, FIN, RST, PSH, URG } = TCP_FLAG;

/** Runs packets [dir, flags] through the tracker; returns the final state and each event. */
function run(packets: [0 | 1, number][], pickup = true): { state: number; events: number[] } {
  let state = 0;
  const events: number[] = [];
  for (const [dir, flags] of packets) {
    const r = track(state, dir, flags, pickup);
    events.push(r >>> 8);
    if (r >>> 8 !== TCP_EVENT.INVALID && r >>> 8 !== TCP_EVENT.MIDSTREAM_REFUSED) state = r & 0xff;
  }
  return { state, events };
}

const { OK, INVALID, MIDSTREAM_PICKUP, MIDSTREAM_REFUSED, CLOSED, NEW_CONNECTION } = TCP_EVENT;

t.test('a normal connection: handshake, data, FIN both ways', async (t) => {
  const r = run([
    [0, SYN],
    [1, SYN | ACK],
    [0, ACK],
    [0, ACK | PSH],
    [1, ACK | PSH],
    [0, FIN | ACK],
    [1, ACK],
    [1, FIN | ACK],
    [0, ACK],
  ]);
  t.same(r.events, [OK, OK, OK, OK, OK, OK, OK, CLOSED, OK]);
  t.equal(r.state & PHASE_MASK, TCP_PHASE.ESTABLISHED);
  t.equal(r.state & (FIN0 | FIN1), FIN0 | FIN1);
});

t.test('retransmissions while opening are fine', async (t) => {
  t.same(run([[0, SYN], [0, SYN], [1, SYN | ACK], [1, SYN | ACK], [0, ACK], [1, SYN | ACK]]).events, [OK, OK, OK, OK, OK, OK]);
});

t.test('invalid for the state', async (t) => {
  t.same(run([[0, SYN], [0, ACK | PSH]]).events, [OK, INVALID], 'data before the handshake');
  t.same(run([[0, SYN], [1, ACK]]).events, [OK, INVALID], 'server ACK without SYN');
  t.same(run([[0, SYN], [0, SYN | ACK]]).events, [OK, INVALID], 'SYN-ACK from the client');
  t.same(run([[0, SYN], [1, SYN | ACK], [0, ACK], [0, SYN]]).events, [OK, OK, OK, INVALID], 'SYN inside an open connection');
  t.same(run([[0, SYN | FIN]]).events, [INVALID], 'SYN+FIN');
  t.same(run([[0, SYN | RST]]).events, [INVALID], 'SYN+RST');
  t.same(run([[0, 0]]).events, [INVALID], 'no flags (NULL scan)');
  t.same(run([[0, FIN | PSH | URG]]).events, [INVALID], 'Xmas without ACK');
});

t.test('resets close from any state; later stray packets are not anomalies', async (t) => {
  t.same(run([[0, SYN], [1, RST | ACK], [0, ACK]]).events, [OK, CLOSED, OK]);
  t.same(run([[0, SYN], [1, SYN | ACK], [0, ACK], [0, RST], [1, ACK | PSH], [1, RST]]).events, [OK, OK, OK, CLOSED, OK, OK]);
});

t.test('a new SYN after the end is a new connection, from either side', async (t) => {
  t.same(run([[0, SYN], [1, RST | ACK], [0, SYN]]).events, [OK, CLOSED, NEW_CONNECTION]);
  const r = run([[0, SYN], [1, SYN | ACK], [0, ACK], [0, FIN | ACK], [1, FIN | ACK], [1, SYN]]);
  t.equal(r.events.at(-1), NEW_CONNECTION);
  t.ok(r.state & REVERSED, 'the new client is the other side');
  t.notOk(fromClient(r.state, 0));
  t.ok(fromClient(r.state, 1));
});

t.test('mid-stream pickup', async (t) => {
  const synack = run([[0, SYN | ACK], [1, ACK], [0, ACK | PSH]]);
  t.same(synack.events, [MIDSTREAM_PICKUP, OK, OK], 'SYN-ACK first');
  t.notOk(synack.state & REVERSED, 'its sender is taken as the client (flags are the sender’s to choose)');
  t.ok(synack.state & MIDSTREAM);
  const data = run([[0, ACK | PSH], [1, ACK]]);
  t.same(data.events, [MIDSTREAM_PICKUP, OK]);
  t.ok(data.state & MIDSTREAM, 'start unknown');
  t.ok(fromClient(data.state, 0), 'the sender of the first packet is the client');
  const back = run([[1, ACK | PSH]]);
  t.ok(back.state & REVERSED, 'picked up in direction 1: that side is the client');
  t.ok(fromClient(back.state, 1));
  t.same(run([[0, ACK | PSH]], false).events, [MIDSTREAM_REFUSED], 'pickup off');
  t.same(run([[0, SYN | ACK]], false).events, [MIDSTREAM_REFUSED]);
  t.same(run([[0, SYN]], false).events, [OK], 'a SYN is always fine');
});

t.test('exhaustive: from any state it produces, never an out-of-range state or event', async (t) => {
  let bad = 0;
  for (let state = 0; state < 128; state++) {
    if ((state & PHASE_MASK) > TCP_PHASE.CLOSED) continue; // not a state track() produces
    for (let flags = 0; flags < 256; flags++) {
      for (const dir of [0, 1]) {
        for (const pickup of [true, false]) {
          const r = track(state, dir, flags, pickup);
          const ev = r >>> 8;
          if ((r & 0xff & PHASE_MASK) > TCP_PHASE.CLOSED || ev > NEW_CONNECTION) bad++;
        }
      }
    }
  }
  t.equal(bad, 0);
});
