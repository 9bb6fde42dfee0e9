import t from 'tap';
import { Writable } from 'node:stream';
import { firewallVerdictEvent } from '../../src/log/firewall-adapter.js';
import { LogRouter } from '../../src/log/router.js';
import { StdoutSink } from '../../src/log/sinks/stdout.js';
import { LogEventSchema } from '../../src/log/schema.js';

// The firewall event as docs/policy.md shows it.
const firewallEvent = {
  stage: 'firewall', action: 'reject', reason: 'firewall.rule', rule: 'ssh-from-anywhere-else', ruleId: 6,
  ruleSource: 'policies/examples/inbound-web.yaml:44:5', scope: 'default', flow: 1234, proto: 6,
  src: '198.51.100.7', srcPort: 51000, dst: '10.20.1.10', dstPort: 22, endpointId: 'vpce-0a1b2c3d4e5f60718',
  serverName: 'allowed.example', serverNameSource: 'tls', nowMs: 81234.5, suppressed: 3,
};

t.test('a firewall event becomes a schema-valid flow_verdict, its suppressed count carried over', async (t) => {
  const r = firewallVerdictEvent(firewallEvent);
  if (r === null) throw new Error('refused');
  t.equal(r.suppressed, 3);
  const lines: string[] = [];
  const out = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().split('\n').filter((l) => l !== '')), cb()) });
  const router = new LogRouter({ sinks: [new StdoutSink(out)], queueBytes: 1 << 20, ratePerS: 100, sampleEvery: 1, applianceId: 'host-1', validate: true });
  router.emit(r.event, Date.UTC(2026, 11, 2), r.suppressed);
  await router.close(10_000);
  const e = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.ok(LogEventSchema.safeParse(e).success);
  t.match(e, { kind: 'flow_verdict', stage: 'firewall', action: 'reject', rule: 'ssh-from-anywhere-else', flowId: '1234', src: '198.51.100.7', dstPort: 22, endpointId: 'vpce-0a1b2c3d4e5f60718', suppressed: 3, bytesToServer: null, serverName: 'allowed.example', serverNameSource: 'tls', time: '2026-12-02T00:00:00.000Z' });
});

t.test('events without a known action or addresses are refused, not written half-formed', async (t) => {
  t.equal(firewallVerdictEvent(null), null);
  t.equal(firewallVerdictEvent({ ...firewallEvent, action: 'block' }), null);
  t.equal(firewallVerdictEvent({ ...firewallEvent, src: 7 }), null);
  t.equal(firewallVerdictEvent({ ...firewallEvent, proto: 300 }), null);
});
