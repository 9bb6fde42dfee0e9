import t from 'tap';
import { runExplain, parseExplainArgs } from '../../src/cli/explain.js';

const POLICY = `version: 1
default_action: drop
sets:
  addresses:
    office: [192.0.2.0/24, "2001:db8:1::/48"]
  domains:
    allowed: ["*.example.com"]
rules:
  - name: no-telnet
    action: reject
    proto: tcp
    dst_ports: 23
  - name: office-https
    action: pass
    proto: tcp
    src: $office
    dst_ports: 443
    sni: $allowed
  - name: office-ping
    action: pass
    proto: [icmp, icmpv6]
    icmp_type: [8, 128]
    src: $office
scopes:
  lab:
    endpoints: [vpce-0a1b2c3d4e5f60718]
    default_action: alert
`;

async function explain(t: Tap.Test, args: string[]): Promise<{ code: number; text: string }> {
  const dir = t.testdir({ 'p.yaml': POLICY });
  t.chdir(dir);
  const lines: string[] = [];
  const code = await runExplain(['--policy', 'p.yaml', ...args], (s) => lines.push(s));
  return { code, text: lines.join('\n') };
}

t.test('explanations', async (t) => {
  const cases: [string, string[]][] = [
    ['the deciding rule, with why and what came before', ['tcp', '192.0.2.10:40000', '->', '93.184.216.34:443', '--sni', 'WWW.example.com']],
    ['a name rule without a name', ['tcp', '192.0.2.10:40000', '93.184.216.34:443']],
    ['the default action', ['--proto', 'udp', '--src', '198.51.100.1', '--dst', '10.0.0.1', '--dport', '53']],
    ['a scope by endpoint', ['udp', '198.51.100.1', '10.0.0.1:53', '--endpoint', 'vpce-0a1b2c3d4e5f60718']],
    ['ICMPv6 echo', ['icmpv6', '2001:db8:1::5', '2001:db8:2::1', '--icmp-type', '128']],
  ];
  for (const [name, args] of cases) {
    t.test(name, async (t) => {
      const r = await explain(t, args);
      t.equal(r.code, 0);
      t.matchSnapshot(r.text, name);
    });
  }
});

t.test('usage errors exit 2; an invalid policy exits 1 with its errors', async (t) => {
  t.equal((await explain(t, ['tcp', '1.2.3.4', '->'])).code, 2);
  t.equal((await explain(t, ['tcp', 'not-an-ip', '1.2.3.4'])).code, 2);
  t.equal((await explain(t, ['bogus', '1.2.3.4', '1.2.3.5'])).code, 2);
  t.equal((await explain(t, ['udp', '1.2.3.4', '1.2.3.5', '--sni', 'x'])).code, 2, '--sni on UDP');
  t.equal((await explain(t, ['tcp', '1.2.3.4', '1.2.3.5', '--endpoint', 'vpce-1'])).code, 2);
  t.equal((await explain(t, ['tcp', '1.2.3.4', '1.2.3.5', '--wat'])).code, 2);
  const dir = t.testdir({ 'bad.yaml': 'version: 1\n' });
  t.chdir(dir);
  const lines: string[] = [];
  t.equal(await runExplain(['--policy', 'bad.yaml', 'tcp', '1.2.3.4', '1.2.3.5'], (s) => lines.push(s)), 1);
  t.match(lines.join('\n'), /bad\.yaml:1:1 \(document\): missing required key "default_action"/);
});

t.test('argument forms', async (t) => {
  t.match(parseExplainArgs(['--policy', 'p', 'tcp', '[2001:db8::1]:443', 'to', '10.0.0.1']).input, { proto: 6, src: '2001:db8::1', srcPort: 443, dst: '10.0.0.1' });
  t.match(parseExplainArgs(['--policy', 'p', '6', '::1', '::2', '--flags', 'ack,psh']).input, { proto: 6, src: '::1', dst: '::2', tcpFlags: 0x18 });
  const json = await explain(t, ['tcp', '192.0.2.10:1', '10.0.0.1:23', '--json']);
  t.match(JSON.parse(json.text), { decision: { action: 'reject', by: 'rule', rule: { name: 'no-telnet', position: 1, line: 9 } }, fastPathAgrees: true });
});

t.test('--midstream: a packet without a known flow, judged in its own reading', async (t) => {
  t.match(parseExplainArgs(['--policy', 'p', 'tcp', '192.0.2.10:1', '10.0.0.1:443', '--midstream']).input, { midstream: true });
  const named = await explain(t, ['tcp', '192.0.2.10:50000', '10.0.0.1:443', '--midstream', '--json']);
  t.equal(named.code, 0);
  t.match(JSON.parse(named.text), {
    decision: { action: 'drop', by: 'unknown_name', rule: { name: 'office-https' } },
    midstream: { pickup: true, packet: 'drop', establishes: false },
    fastPathAgrees: true,
  }, 'a name rule cannot allow a flow whose start was not seen: names.on_unknown (drop)');
  // The server's packet of a telnet flow the policy would reject: its own reading (src = the server) matches no
  // rule of the scope but its default; the reverse reading is not tried.
  const reversed = await explain(t, ['tcp', '10.0.0.1:23', '192.0.2.10:50000', '--midstream']);
  t.equal(reversed.code, 0);
  t.match(reversed.text, /decision\s+DROP by the default action/);
  t.match(reversed.text, /midstream\s+packet DROP, nothing cached: denied in its own reading/);
  const telnet = await explain(t, ['tcp', '192.0.2.10:50000', '10.0.0.1:23', '--midstream', '--json']);
  t.match(JSON.parse(telnet.text), { decision: { action: 'reject', by: 'rule' }, midstream: { packet: 'drop', establishes: false } }, 'a reject rule drops a mid-stream packet (no reset: it may be the other side’s)');
  const lab = await explain(t, ['tcp', '198.51.100.1:5', '10.0.0.1:80', '--midstream', '--endpoint', 'vpce-0a1b2c3d4e5f60718', '--json']);
  t.match(JSON.parse(lab.text), { decision: { action: 'alert', by: 'default' }, midstream: { packet: 'alert', establishes: true } }, 'allowed: the flow is established');
  const bad = await explain(t, ['udp', '192.0.2.10:1', '10.0.0.1:53', '--midstream']);
  t.equal(bad.code, 2, '--midstream is for TCP');
  const withName = await explain(t, ['tcp', '192.0.2.10:1', '10.0.0.1:443', '--midstream', '--sni', 'a.example.com']);
  t.equal(withName.code, 2, 'no name can be given for a mid-stream flow');
});

t.test('--midstream with midstream_pickup off: on_midstream, the rules are not consulted', async (t) => {
  const dir = t.testdir({ 'p.yaml': 'version: 1\ndefault_action: pass\nsettings:\n  tcp:\n    midstream_pickup: false\n    on_midstream: reject_flow\n' });
  t.chdir(dir);
  const lines: string[] = [];
  const code = await runExplain(['--policy', 'p.yaml', 'tcp', '10.0.0.1:1', '10.0.0.2:80', '--midstream', '--json'], (s) => lines.push(s));
  t.equal(code, 0);
  t.match(JSON.parse(lines.join('\n')), { midstream: { pickup: false, packet: 'reject', establishes: false } });
});
