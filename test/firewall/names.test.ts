import t from 'tap';
import { Buffer } from 'node:buffer';
import { ACTION, STAGE_RESULT } from '../../src/pipeline/stage.js';
import { REASON } from '../../src/firewall/log.js';
import { captureClientHello } from '../fixtures/client-hello.js';
import { ACK, Harness, PSH, RST } from '../fixtures/firewall.js';

const ALLOW_LIST = (settings = ''): string => `version: 1
default_action: drop
${settings}
sets:
  domains:
    allowed: [good.example, "*.Good-Wildcard.example"]
rules:
  - name: dns
    action: pass
    proto: udp
    dst_ports: 53
  - name: https-allowed
    action: pass
    proto: tcp
    dst_ports: 443
    sni: $allowed
  - name: http-allowed
    action: pass
    proto: tcp
    dst_ports: 80
    http_host: $allowed
  - name: ssh
    action: pass
    proto: tcp
    dst_ports: 22
`;

const CLIENT = '10.0.0.5';
const SERVER = '93.184.216.34';

/** Handshake, then the client's bytes in `segments` (contiguous sequence numbers); outcomes of the data packets. */
function connectAndSend(h: Harness, flow: number, dport: number, segments: Buffer[], nowMs = 0): ReturnType<Harness['send']>[] {
  const hs = h.handshake({ flow, src: CLIENT, dst: SERVER, sport: 40000 + flow, dport, nowMs });
  for (const o of hs) if (o.result !== STAGE_RESULT.CONTINUE) throw new Error('handshake not passed');
  let seq = 1001;
  return segments.map((s) => {
    const o = h.send({ flow, src: CLIENT, dst: SERVER, sport: 40000 + flow, dport, flags: ACK | PSH, seq, ack: 5001, payload: s, nowMs });
    seq += s.length;
    return o;
  });
}

t.test('SNI allow-list on real ClientHello bytes', async (t) => {
  const good = await captureClientHello({ servername: 'good.example' });
  const wild = await captureClientHello({ servername: 'API.v2.good-wildcard.EXAMPLE' });
  const apex = await captureClientHello({ servername: 'good-wildcard.example' });
  const bad = await captureClientHello({ servername: 'evil.example' });
  const h = Harness.from(ALLOW_LIST());

  const [g] = connectAndSend(h, 1, 443, [good]);
  t.match(g, { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.PASS }, 'allowed name: the ClientHello goes on (with anything held)');
  t.equal(h.flows.getRuleId(1), 1);
  t.match(connectAndSend(h, 2, 443, [wild])[0], { flowAction: ACTION.PASS }, 'wildcard, case-insensitive');
  t.match(connectAndSend(h, 3, 443, [apex])[0], { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.DEFAULT }, '"*.x" does not match x itself');
  t.match(connectAndSend(h, 4, 443, [bad])[0], { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.DEFAULT }, 'other names: default drop');
  t.equal(h.stage.counters.namesRead, 4);

  t.test('split across two packets: the first is held, the second decides', async (t) => {
    const cut = 60;
    const [first, second] = connectAndSend(h, 5, 443, [good.subarray(0, cut), good.subarray(cut)]);
    t.equal(first?.result, STAGE_RESULT.HOLD, 'first part held');
    t.equal(first?.flowAction, ACTION.NONE, 'undecided');
    t.match(second, { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.PASS }, 'name complete: pass (the data plane releases the held part)');
    const [b1, b2] = connectAndSend(h, 6, 443, [bad.subarray(0, 7), bad.subarray(7)]);
    t.equal(b1?.result, STAGE_RESULT.HOLD);
    t.match(b2, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP }, 'no byte of a blocked ClientHello goes through');
    t.equal(h.stage.pendingFlows, 0, 'no flow left waiting');
  });

  t.test('retransmitted and overlapping segments are read once, in sequence order', async (t) => {
    h.handshake({ flow: 7, src: CLIENT, dst: SERVER, sport: 47, dport: 443 });
    const send = (seq: number, bytes: Buffer): ReturnType<Harness['send']> => h.send({ flow: 7, src: CLIENT, dst: SERVER, sport: 47, dport: 443, flags: ACK | PSH, seq, ack: 5001, payload: bytes });
    t.equal(send(1001, good.subarray(0, 50)).result, STAGE_RESULT.HOLD);
    t.equal(send(1001, good.subarray(0, 50)).result, STAGE_RESULT.HOLD, 'retransmission');
    t.equal(send(1001 + 120, good.subarray(120)).result, STAGE_RESULT.HOLD, 'beyond a gap: held, and kept to be read in order');
    t.match(send(1001 + 30, good.subarray(30, 120)), { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.PASS }, 'an identical overlap fills the gap: the hello is complete');
  });

  t.test('the log names the server', async (t) => {
    const log = h.logs.find((l) => l.flow === 4);
    t.match(log, { action: 'drop', reason: REASON.DEFAULT, serverName: 'evil.example', serverNameSource: 'tls', dstPort: 443 });
  });
});

t.test('HTTP Host, and sni/http_host/domain see only their own protocol', async (t) => {
  const h = Harness.from(ALLOW_LIST());
  const req = Buffer.from('GET / HTTP/1.1\r\nHost: good.example\r\n\r\n');
  t.match(connectAndSend(h, 1, 80, [req])[0], { flowAction: ACTION.PASS });
  t.match(connectAndSend(h, 2, 80, [Buffer.from('GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n')])[0], { action: ACTION.DROP });
  const hello = await captureClientHello({ servername: 'good.example' });
  t.match(connectAndSend(h, 3, 80, [hello])[0], { action: ACTION.DROP }, 'a ClientHello on port 80 does not satisfy http_host');
  t.match(connectAndSend(h, 4, 443, [req])[0], { action: ACTION.DROP }, 'a Host header on 443 does not satisfy sni');

  const either = Harness.from(`version: 1
default_action: drop
rules:
  - name: named
    action: pass
    proto: tcp
    domain: good.example
`);
  t.match(connectAndSend(either, 1, 443, [hello])[0], { flowAction: ACTION.PASS }, 'domain: SNI');
  t.match(connectAndSend(either, 2, 8080, [req])[0], { flowAction: ACTION.PASS }, 'domain: Host');
});

t.test('no readable name: on_unreadable', async (t) => {
  const h = Harness.from(ALLOW_LIST());
  // SSH on 443: the server speaks first.
  h.handshake({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 443 });
  const banner = h.send({ flow: 1, src: SERVER, dst: CLIENT, sport: 443, dport: 1, flags: ACK | PSH, seq: 5001, payload: 'SSH-2.0-OpenSSH\r\n', dir: 1 });
  t.match(banner, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.NAME_UNREADABLE }, 'server spoke first: default on_unreadable is drop');
  t.equal(h.flows.getRuleId(1), 1, 'credited to the rule that needed the name');
  t.match(connectAndSend(h, 2, 443, [Buffer.from('not tls at all')])[0], { action: ACTION.DROP, reason: REASON.NAME_UNREADABLE }, 'not TLS');
  const noSni = await captureClientHello();
  t.match(connectAndSend(h, 3, 443, [noSni])[0], { action: ACTION.DROP, reason: REASON.NAME_UNREADABLE }, 'ClientHello without SNI');
  t.match(connectAndSend(h, 4, 22, [Buffer.from('SSH-2.0-client\r\n')])[0], { result: STAGE_RESULT.CONTINUE }, 'port 22: no name rule applies, nothing waits');
  t.match(h.logs.find((l) => l.flow === 3), { reason: REASON.NAME_UNREADABLE, rule: 'https-allowed', action: 'drop' });

  const next = Harness.from(`version: 1
default_action: drop
settings:
  names:
    on_unreadable: next_rule
rules:
  - name: named
    action: pass
    proto: tcp
    sni: good.example
  - name: fallback
    action: alert
    proto: tcp
`);
  t.match(connectAndSend(next, 1, 443, [noSni])[0], { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.ALERT }, 'next_rule: evaluation goes on after the name rule');
  t.equal(next.flows.getRuleId(1), 1);
  const pass = Harness.from(ALLOW_LIST('settings:\n  names:\n    on_unreadable: pass'));
  t.match(connectAndSend(pass, 1, 443, [noSni])[0], { flowAction: ACTION.PASS, result: STAGE_RESULT.CONTINUE });
});

t.test('budgets: bytes, time, hold expiry and the number of waiting flows', async (t) => {
  const hello = await captureClientHello({ servername: 'good.example' });
  const small = Harness.from(ALLOW_LIST('settings:\n  names:\n    max_bytes: 256'));
  t.ok(hello.length > 256);
  t.match(connectAndSend(small, 1, 443, [hello.subarray(0, 100)])[0], { action: ACTION.DROP, reason: REASON.NAME_UNREADABLE }, 'a ClientHello announcing more than max_bytes: decided at once');
  const longHead = Buffer.from(`GET / HTTP/1.1\r\nCookie: ${'x'.repeat(180)}\r\n`);
  const outs = connectAndSend(small, 2, 80, [longHead, Buffer.from(`X-More: ${'y'.repeat(100)}\r\nHost: good.example\r\n\r\n`)]);
  t.equal(outs[0]?.result, STAGE_RESULT.HOLD, 'an HTTP head still arriving');
  t.match(outs[1], { action: ACTION.DROP, reason: REASON.NAME_UNREADABLE }, 'more than max_bytes without the end of the head');

  const slow = Harness.from(ALLOW_LIST('settings:\n  names:\n    max_wait_ms: 100'));
  slow.handshake({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 443, nowMs: 0 });
  t.equal(slow.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 443, flags: ACK | PSH, seq: 1001, payload: hello.subarray(0, 10), nowMs: 50 }).result, STAGE_RESULT.HOLD);
  t.match(slow.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 443, flags: ACK | PSH, seq: 1011, payload: hello.subarray(10), nowMs: 500 }), { action: ACTION.DROP, reason: REASON.NAME_UNREADABLE }, 'past the deadline');
  t.equal(slow.stage.counters.nameTimeouts, 1);

  const expiring = Harness.from(ALLOW_LIST('settings:\n  names:\n    on_unreadable: reject'));
  connectAndSend(expiring, 9, 443, [hello.subarray(0, 10)]);
  t.equal(expiring.stage.onHoldExpired(9), ACTION.REJECT, 'onHoldExpired: the on_unreadable action');
  t.equal(expiring.flows.getAction(9), ACTION.REJECT, 'and the flow is decided');
  t.equal(expiring.stage.pendingFlows, 0);
  t.equal(expiring.stage.onHoldExpired(12345), ACTION.DROP, 'a flow it does not know: drop');

  const full = Harness.from(ALLOW_LIST('settings:\n  names:\n    max_pending_flows: 1\n    on_memcap: reject'));
  full.handshake({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 443 });
  t.equal(full.stage.pendingFlows, 0, 'the handshake takes no slot');
  full.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 1, dport: 443, flags: ACK | PSH, seq: 1001, payload: hello.subarray(0, 10) });
  t.equal(full.stage.pendingFlows, 1, 'the first client byte starts a wait');
  full.handshake({ flow: 2, src: CLIENT, dst: SERVER, sport: 2, dport: 443 });
  t.match(full.send({ flow: 2, src: CLIENT, dst: SERVER, sport: 2, dport: 443, flags: ACK | PSH, seq: 1001, payload: hello.subarray(0, 10) }), { action: ACTION.REJECT, reason: REASON.NAME_MEMCAP });
  t.equal(full.stage.counters.nameMemcap, 1);
  full.handshake({ flow: 3, src: CLIENT, dst: SERVER, sport: 3, dport: 443, nowMs: 5000 });
  full.send({ flow: 3, src: CLIENT, dst: SERVER, sport: 3, dport: 443, flags: ACK | PSH, seq: 1001, payload: hello.subarray(0, 10), nowMs: 5000 });
  t.equal(full.stage.pendingFlows, 1, 'a wait past its deadline is reclaimed for a new flow');
  t.equal(full.flows.getAction(1), ACTION.DROP, 'the reclaimed flow is decided unreadable');
  full.send({ flow: 3, src: CLIENT, dst: SERVER, sport: 3, dport: 443, flags: RST, nowMs: 5000 });
  full.stage.onFlowEnd(3);
  t.equal(full.stage.pendingFlows, 0, 'onFlowEnd frees the wait');
});

t.test('a wait started under one policy finishes under it; new flows get the new one', async (t) => {
  const hello = await captureClientHello({ servername: 'good.example' });
  const h = Harness.from(ALLOW_LIST());
  const [first] = connectAndSend(h, 1, 443, [hello.subarray(0, 20)]);
  t.equal(first?.result, STAGE_RESULT.HOLD);
  const { policy } = await import('../fixtures/firewall.js');
  h.stage.setPolicy(policy('version: 1\ndefault_action: drop\n'));
  t.match(h.send({ flow: 1, src: CLIENT, dst: SERVER, sport: 40001, dport: 443, flags: ACK | PSH, seq: 1021, payload: hello.subarray(20) }), { flowAction: ACTION.PASS });
  t.match(h.send({ flow: 2, src: CLIENT, dst: SERVER, sport: 2, dport: 443 }), { action: ACTION.DROP });
});
