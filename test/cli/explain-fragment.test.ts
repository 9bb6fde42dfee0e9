import t from 'tap';
import { runExplain } from '../../src/cli/explain.js';

const POLICY = `version: 1
default_action: drop
rules:
  - name: dns
    action: pass
    proto: udp
    dst_ports: 53
  - name: no-telnet
    action: reject
    proto: tcp
    dst_ports: 23
`;

async function explain(t: Tap.Test, args: string[]): Promise<{ code: number; text: string }> {
  const dir = t.testdir({ 'p.yaml': POLICY });
  t.chdir(dir);
  const lines: string[] = [];
  const code = await runExplain(['--policy', 'p.yaml', ...args], (s) => lines.push(s));
  return { code, text: lines.join('\n') };
}

t.test('explain --fragment later: a later fragment follows the verdict of its datagram\'s first fragment', async (t) => {
  const allowed = await explain(t, ['udp', '10.0.0.1:5000', '10.0.0.2:53', '--fragment', 'later']);
  t.equal(allowed.code, 0);
  t.match(allowed.text, /fragment {2}LATER fragment of a datagram of this flow: PASS/);
  t.match(allowed.text, /the rules never judge it alone/);
  const forbidden = await explain(t, ['udp', '10.0.0.1:5000', '10.0.0.2:5301', '--fragment', 'later']);
  t.match(forbidden.text, /LATER fragment of a datagram of this flow: DROP/, 'a datagram to a port no rule allows: its later fragments drop too');
  const rejected = await explain(t, ['tcp', '10.0.0.1:5000', '10.0.0.2:23', '--fragment', 'later']);
  t.match(rejected.text, /LATER fragment of a datagram of this flow: DROP/);
  t.match(rejected.text, /no reset is sent for a later fragment/);
});

t.test('explain --fragment first: judged by the rules, and it must carry the whole transport header', async (t) => {
  const r = await explain(t, ['tcp', '10.0.0.1:5000', '10.0.0.2:23', '--fragment', 'first']);
  t.equal(r.code, 0);
  t.match(r.text, /FIRST fragment of a datagram of this flow: REJECT/);
  t.match(r.text, /the whole TCP header/);
  const json = await explain(t, ['udp', '10.0.0.1:5000', '10.0.0.2:53', '--fragment', 'later', '--json']);
  t.match(JSON.parse(json.text), { decision: { action: 'pass' }, fragment: { role: 'later', action: 'pass' } });
});

t.test('explain --fragment takes first or later only', async (t) => {
  t.equal((await explain(t, ['udp', '10.0.0.1', '10.0.0.2:53', '--fragment', 'middle'])).code, 2);
});
