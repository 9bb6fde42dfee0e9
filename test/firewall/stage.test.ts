import t from 'tap';
import { ACTION, STAGE_RESULT } from '../../src/pipeline/stage.js';
import { REASON } from '../../src/firewall/log.js';
import { ACK, FIN, Harness, policy, PSH, RST, SYN } from '../fixtures/firewall.js';

const ORDERED = `version: 1
default_action: drop
rules:
  - name: block-one-host
    action: reject
    proto: tcp
    dst: 10.0.0.9
  - name: web
    action: pass
    proto: tcp
    dst: 10.0.0.0/24
    dst_ports: [80, 443]
  - name: everything-to-10
    action: alert
    dst: 10.0.0.0/8
  - name: never-reached-for-10
    action: drop
    dst: 10.0.0.0/8
`;

t.test('first match wins, in file order; no match gets the default action', async (t) => {
  const h = Harness.from(ORDERED);
  t.match(h.send({ flow: 1, src: '192.0.2.1', dst: '10.0.0.9', dport: 80 }), { result: STAGE_RESULT.VERDICT, action: ACTION.REJECT, reason: REASON.RULE }, 'the earlier reject beats the later pass');
  t.match(h.send({ flow: 2, src: '192.0.2.1', dst: '10.0.0.8', dport: 80 }), { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.PASS }, 'pass continues down the chain');
  t.match(h.send({ flow: 3, src: '192.0.2.1', dst: '10.0.0.8', dport: 22 }), { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.ALERT }, 'alert is a pass that logs');
  t.match(h.send({ flow: 4, src: '192.0.2.1', dst: '10.1.0.1', dport: 22 }), { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.ALERT }, 'rule 3 shadows rule 4');
  t.match(h.send({ flow: 5, src: '192.0.2.1', dst: '172.16.0.1', dport: 22 }), { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.DEFAULT }, 'default action');
  t.equal(h.flows.getRuleId(1), 0);
  t.equal(h.flows.getRuleId(5), -1, 'a default decision has rule id -1');
  t.same(
    h.logs.map((l) => [l.rule, l.action]),
    [
      ['block-one-host', 'reject'],
      ['everything-to-10', 'alert'],
      ['everything-to-10', 'alert'],
      [null, 'drop'],
    ],
    'drop, reject, alert and a non-pass default are logged; pass is not',
  );
  t.match(h.logs[0], { stage: 'firewall', scope: 'default', src: '192.0.2.1', dst: '10.0.0.9', dstPort: 80, proto: 6, ruleSource: 'policy.yaml:4:5', endpointId: null, suppressed: 0 });
});

t.test('a pass default with no rules passes everything (the quick-start policy)', async (t) => {
  const h = Harness.from('version: 1\ndefault_action: pass\n');
  for (const [i, p] of [
    { src: '10.0.0.1', dst: '10.0.0.2', dport: 22 },
    { proto: 'udp' as const, src: 'fd00::1', dst: 'fd00::2' },
    { proto: 'icmp' as const, src: '10.0.0.1', dst: '8.8.8.8' },
  ].entries()) {
    t.equal(h.send({ flow: 10 + i, ...p }).result, STAGE_RESULT.CONTINUE);
  }
  t.equal(h.logs.length, 0, 'nothing logged');
});

t.test('stateful: later packets and return traffic reuse the flow verdict', async (t) => {
  const h = Harness.from(ORDERED);
  const [syn, synack, ack] = h.handshake({ flow: 7, src: '192.0.2.1', dst: '10.0.0.8', sport: 40000, dport: 443 });
  t.equal(syn?.result, STAGE_RESULT.CONTINUE);
  t.equal(synack?.result, STAGE_RESULT.CONTINUE, 'the answer passes without rules: no rule allows 10.0.0.8:443 → 192.0.2.1');
  t.equal(ack?.result, STAGE_RESULT.CONTINUE);
  const data = h.send({ flow: 7, src: '10.0.0.8', dst: '192.0.2.1', sport: 443, dport: 40000, flags: ACK | PSH, seq: 5001, ack: 1001, payload: 'hello', dir: 1 });
  t.equal(data.result, STAGE_RESULT.CONTINUE);
  t.equal(h.stage.counters.decisions, 1, 'one evaluation for the whole flow');

  h.send({ flow: 8, src: '192.0.2.1', dst: '10.0.0.9', dport: 80 });
  const again = h.send({ flow: 8, src: '192.0.2.1', dst: '10.0.0.9', dport: 80, flags: SYN });
  t.match(again, { result: STAGE_RESULT.VERDICT, action: ACTION.REJECT, reason: REASON.CACHED }, 'a retransmitted SYN of a rejected flow: cached');
  t.equal(h.logs.filter((l) => l.flow === 8).length, 1, 'logged once per flow, not per packet');
});

t.test('TCP state: invalid packets follow on_invalid, and the connection end is reported', async (t) => {
  const mk = (onInvalid: string): Harness =>
    Harness.from(`version: 1
default_action: pass
settings:
  tcp:
    on_invalid: ${onInvalid}
`);
  const h = mk('drop_packet');
  h.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: SYN });
  const early = h.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: ACK | PSH, payload: 'data before the handshake' });
  t.match(early, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.TCP_INVALID, flowAction: ACTION.PASS }, 'drop_packet drops the packet, not the flow');
  t.equal(h.stage.counters.tcpInvalid, 1);
  t.match(h.logs.at(-1), { reason: REASON.TCP_INVALID, action: 'drop', rule: null });
  const xmas = h.send({ flow: 2, src: '10.0.0.1', dst: '10.0.0.2', flags: FIN | PSH | 0x20 });
  t.match(xmas, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.TCP_INVALID }, 'FIN+PSH+URG without ACK (an Xmas scan)');
  const synFin = h.send({ flow: 3, src: '10.0.0.1', dst: '10.0.0.2', flags: SYN | FIN });
  t.equal(synFin.reason, REASON.TCP_INVALID, 'SYN+FIN');

  const pass = mk('pass_packet');
  pass.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: SYN });
  t.equal(pass.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: ACK, payload: 'x' }).result, STAGE_RESULT.CONTINUE, 'pass_packet: counted and logged, then handled as usual');
  t.equal(pass.stage.counters.tcpInvalid, 1);

  const flow = mk('drop_flow');
  flow.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: SYN });
  flow.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: ACK, payload: 'x' });
  t.equal(flow.flows.getAction(1), ACTION.DROP, 'drop_flow: the whole flow is dropped from now on');

  const rej = mk('reject_flow');
  rej.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: SYN });
  t.match(rej.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', flags: ACK, payload: 'x' }), { action: ACTION.REJECT, flowAction: ACTION.REJECT });

  const fin = mk('drop_packet');
  fin.handshake({ flow: 5, src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 });
  fin.send({ flow: 5, src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, flags: FIN | ACK });
  t.notOk(fin.flows.closed.has(5), 'one FIN: still open');
  fin.send({ flow: 5, src: '10.0.0.2', dst: '10.0.0.1', sport: 2, dport: 1, flags: FIN | ACK, dir: 1 });
  t.ok(fin.flows.closed.has(5), 'FIN both ways: markClosed');
  fin.handshake({ flow: 6, src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 });
  fin.send({ flow: 6, src: '10.0.0.2', dst: '10.0.0.1', sport: 2, dport: 1, flags: RST, dir: 1 });
  t.ok(fin.flows.closed.has(6), 'RST: markClosed');
});

t.test('a new SYN on a finished connection is decided afresh (5-tuple reuse)', async (t) => {
  const text = (action: string): string => `version: 1
default_action: pass
rules:
  - name: web
    action: ${action}
    proto: tcp
    dst_ports: 80
`;
  const h = Harness.from(text('alert'));
  h.handshake({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', sport: 1234, dport: 80 });
  h.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', sport: 1234, dport: 80, flags: RST });
  h.stage.setPolicy(policy(text('drop')));
  const syn = h.send({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', sport: 1234, dport: 80, flags: SYN, seq: 9000 });
  t.match(syn, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.RULE }, 'the new connection meets the new policy');
  t.equal(h.stage.counters.tcpNewConnections, 1);
});

t.test('mid-stream pickup', async (t) => {
  const text = (pickup: boolean, on = 'drop_packet'): string => `version: 1
default_action: drop
settings:
  tcp:
    midstream_pickup: ${pickup}
    on_midstream: ${on}
rules:
  - name: clients-to-web
    action: pass
    proto: tcp
    src: 10.0.0.0/8
    dst: 203.0.113.0/24
    dst_ports: 443
`;
  const on = Harness.from(text(true));
  // After a failover GWLB sends us the server's packet first: the flow table calls the server the initiator.
  const fromServer = on.send({ flow: 1, src: '203.0.113.5', dst: '10.0.0.7', sport: 443, dport: 50000, flags: ACK | PSH, payload: 'x' });
  t.match(fromServer, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.MIDSTREAM_DENIED, flowAction: ACTION.NONE }, 'judged in its own reading only (sender = client): denied, dropped, nothing cached');
  t.equal(on.flows.getTcpState(1), 0, 'no TCP state kept either');
  t.equal(on.stage.counters.midstreamPickups, 1);
  t.equal(on.stage.counters.midstreamDenied, 1);
  const fromClient = on.send({ flow: 1, dir: 1, src: '10.0.0.7', dst: '203.0.113.5', sport: 50000, dport: 443, flags: ACK | PSH, payload: 'y' });
  t.match(fromClient, { result: STAGE_RESULT.CONTINUE, flowAction: ACTION.PASS }, "the real client's next packet establishes the flow");
  const back = on.send({ flow: 1, src: '203.0.113.5', dst: '10.0.0.7', sport: 443, dport: 50000, flags: ACK | PSH, payload: 'x' });
  t.equal(back.result, STAGE_RESULT.CONTINUE, 'then the server’s packets follow the cached verdict');
  const synack = on.send({ flow: 2, src: '203.0.113.5', dst: '10.0.0.7', sport: 443, dport: 50001, flags: SYN | ACK });
  t.equal(synack.action, ACTION.DROP, 'a SYN-ACK first is judged in its sender’s reading too (flags do not choose the reading)');

  const off = Harness.from(text(false));
  const refused = off.send({ flow: 1, src: '10.0.0.7', dst: '203.0.113.5', sport: 50000, dport: 443, flags: ACK | PSH, payload: 'x' });
  t.match(refused, { result: STAGE_RESULT.VERDICT, action: ACTION.DROP, reason: REASON.TCP_MIDSTREAM, flowAction: ACTION.NONE });
  t.equal(off.stage.counters.midstreamRefused, 1);
  const syn = off.send({ flow: 1, src: '10.0.0.7', dst: '203.0.113.5', sport: 50000, dport: 443, flags: SYN });
  t.equal(syn.result, STAGE_RESULT.CONTINUE, 'drop_packet leaves the flow open to a proper SYN');
  const offReject = Harness.from(text(false, 'reject_flow'));
  t.match(offReject.send({ flow: 1, src: '10.0.0.7', dst: '203.0.113.5', sport: 50000, dport: 443, flags: ACK }), { action: ACTION.REJECT, flowAction: ACTION.REJECT });
});

t.test('non-first fragments are decided by addresses and protocol only', async (t) => {
  const h = Harness.from(`version: 1
default_action: pass
rules:
  - name: no-ssh
    action: drop
    proto: tcp
    dst_ports: 22
`);
  // A later fragment has no transport header: the decoder reports l4Offset -1.
  const o = h.send({ flow: 1, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' });
  t.equal(o.result, STAGE_RESULT.CONTINUE);
  const ctx = h.ctx;
  ctx.flow = 2;
  ctx.pkt.protocol = 6;
  ctx.pkt.l4Offset = -1;
  ctx.pkt.isFragment = true;
  ctx.pkt.isLaterFragment = true;
  ctx.pkt.srcPort = 0;
  ctx.pkt.dstPort = 0;
  t.equal(h.stage.onPacket(ctx), STAGE_RESULT.VERDICT, 'the port rule is not checkable: its action applies');
});

t.test('log rate limit per rule, with the suppressed count carried by the next event', async (t) => {
  const h = Harness.from(`version: 1
default_action: pass
rules:
  - name: noisy
    action: drop
    proto: udp
    log: { max_per_s: 2 }
  - name: quiet
    action: drop
    proto: tcp
    log: false
`);
  for (let i = 0; i < 10; i++) h.send({ flow: 100 + i, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2', nowMs: 0 });
  t.equal(h.logs.length, 2, 'burst of 2, then limited');
  t.equal(h.stage.counters.logsSuppressed, 8);
  h.send({ flow: 200, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2', nowMs: 1000 });
  t.equal(h.logs.length, 3, 'a second later: allowed again');
  t.equal(h.logs[2]?.suppressed, 8, 'with the count of what was dropped');
  h.send({ flow: 300, src: '10.0.0.1', dst: '10.0.0.2', nowMs: 1000 });
  t.equal(h.logs.length, 3, 'log: false');
  t.equal(h.flows.getAction(300), ACTION.DROP, 'still dropped');
});

t.test('reload: setPolicy applies to new flows; decided flows keep their verdict unless asked', async (t) => {
  const allow = `version: 1
default_action: pass
`;
  const deny = `version: 1
default_action: drop
`;
  const h = Harness.from(allow);
  h.send({ flow: 1, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' });
  h.stage.setPolicy(policy(deny));
  t.equal(h.send({ flow: 1, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).result, STAGE_RESULT.CONTINUE, 'established flow keeps pass');
  t.equal(h.send({ flow: 2, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).action, ACTION.DROP, 'new flow gets the new policy');
  h.stage.setPolicy(policy(allow), { reevaluate: true });
  t.equal(h.send({ flow: 2, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).result, STAGE_RESULT.CONTINUE, 're-evaluated: now passes');
  t.equal(h.stage.counters.reevaluated, 1);
  // Another stage's verdict is not the firewall's to undo.
  h.flows.setVerdict(1, ACTION.DROP, 77);
  h.stage.setPolicy(policy(allow), { reevaluate: true });
  t.equal(h.send({ flow: 1, proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }).action, ACTION.DROP, 'a drop set by a later stage stands');
  h.stage.onFlowEnd(2);
  t.equal(h.stage.counters.reevaluated, 1);
});
