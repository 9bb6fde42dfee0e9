import t from 'tap';
import { ACTION, STAGE_RESULT } from '../../src/pipeline/stage.js';
import { ACK, Harness, SYN, FIN, PSH } from '../fixtures/firewall.js';

/** One rule that drops what it matches, default pass: `dropped(...)` tells whether a new flow matched. */
function dropper(rule: string, extra = ''): Harness {
  return Harness.from(`version: 1
default_action: pass
${extra}
rules:
  - name: the-rule
    action: drop
${rule
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`);
}

let flowId = 100;
function dropped(h: Harness, p: Parameters<Harness['send']>[0]): boolean {
  const o = h.send({ flow: flowId++, ...p });
  return o.result === STAGE_RESULT.VERDICT && o.action === ACTION.DROP;
}

t.test('protocol: a name, a number, a list', async (t) => {
  const h = dropper('proto: [udp, 47]');
  t.ok(dropped(h, { proto: 'udp', src: '10.0.0.1', dst: '10.0.0.2' }), 'udp matches');
  t.notOk(dropped(h, { proto: 'tcp', src: '10.0.0.1', dst: '10.0.0.2' }), 'tcp does not');
  t.notOk(dropped(h, { proto: 'icmp', src: '10.0.0.1', dst: '10.0.0.2' }), 'icmp does not');
});

t.test('source and destination addresses: CIDRs, hosts, IPv4 and IPv6', async (t) => {
  const h = dropper(`src: [10.0.0.0/8, "2001:db8::/32"]
dst: [192.0.2.7, "2001:db8:ffff::1"]`);
  t.ok(dropped(h, { src: '10.200.3.4', dst: '192.0.2.7' }), 'IPv4 inside the /8, exact host');
  t.notOk(dropped(h, { src: '11.0.0.1', dst: '192.0.2.7' }), 'IPv4 outside the /8');
  t.notOk(dropped(h, { src: '10.0.0.1', dst: '192.0.2.8' }), 'the host next door');
  t.ok(dropped(h, { src: '2001:db8:1::5', dst: '2001:db8:ffff::1' }), 'IPv6');
  t.notOk(dropped(h, { src: '2001:db9::5', dst: '2001:db8:ffff::1' }), 'IPv6 outside the /32');
});

t.test('IPv6 CIDRs never match IPv4 packets, and 0.0.0.0/0 is all of IPv4 only', async (t) => {
  const v6all = dropper('dst: "::/0"');
  t.notOk(dropped(v6all, { src: '10.0.0.1', dst: '10.0.0.2' }), '::/0 does not match IPv4');
  t.ok(dropped(v6all, { src: 'fd00::1', dst: 'fd00::2' }), '::/0 matches IPv6');
  const v4all = dropper('dst: 0.0.0.0/0');
  t.ok(dropped(v4all, { src: '10.0.0.1', dst: '10.0.0.2' }));
  t.notOk(dropped(v4all, { src: 'fd00::1', dst: 'fd00::2' }));
  const mapped = dropper('dst: "::ffff:10.0.0.0/104"');
  t.ok(dropped(mapped, { src: '10.0.0.1', dst: '10.1.2.3' }), 'an IPv4-mapped prefix is the IPv4 prefix');
});

t.test('exclusions: match minus except, through named sets', async (t) => {
  const h = dropper(
    'dst: { match: [$corp], except: [$lab, 10.0.0.1] }',
    `sets:
  addresses:
    corp: [10.0.0.0/8]
    lab: { match: [10.9.0.0/16], except: [10.9.9.0/24] }`,
  );
  t.ok(dropped(h, { src: '1.1.1.1', dst: '10.1.1.1' }), 'in corp');
  t.notOk(dropped(h, { src: '1.1.1.1', dst: '10.9.1.1' }), 'in lab: excepted');
  t.ok(dropped(h, { src: '1.1.1.1', dst: '10.9.9.9' }), 'in the hole the lab set punches in itself: back in');
  t.notOk(dropped(h, { src: '1.1.1.1', dst: '10.0.0.1' }), 'excepted host');
  const anyBut = dropper('src: { except: [10.0.0.0/8] }');
  t.ok(dropped(anyBut, { src: '192.0.2.1', dst: '10.0.0.2' }), 'match defaults to any');
  t.ok(dropped(anyBut, { src: 'fd00::1', dst: 'fd00::2' }), 'including IPv6');
  t.notOk(dropped(anyBut, { src: '10.1.1.1', dst: '10.0.0.2' }));
});

t.test('ports: single, ranges, sets, exclusions, source and destination', async (t) => {
  const h = dropper(
    `proto: [tcp, udp]
dst_ports: { match: [$web, "8000-8999"], except: [8080] }
src_ports: "1024-65535"`,
    `sets:
  ports:
    web: [80, 443]`,
  );
  t.ok(dropped(h, { src: '1.1.1.1', dst: '2.2.2.2', sport: 5000, dport: 443 }));
  t.ok(dropped(h, { proto: 'udp', src: '1.1.1.1', dst: '2.2.2.2', sport: 5000, dport: 8500 }));
  t.notOk(dropped(h, { src: '1.1.1.1', dst: '2.2.2.2', sport: 5000, dport: 8080 }), 'excepted port');
  t.notOk(dropped(h, { src: '1.1.1.1', dst: '2.2.2.2', sport: 5000, dport: 22 }));
  t.notOk(dropped(h, { src: '1.1.1.1', dst: '2.2.2.2', sport: 80, dport: 443 }), 'source port out of range');
  t.ok(dropped(h, { src: '1.1.1.1', dst: '2.2.2.2', sport: 65535, dport: 8999 }), 'range ends are inclusive');
});

t.test('ICMP type and code (IPv4 and IPv6)', async (t) => {
  const h = dropper(`proto: [icmp, icmpv6]
icmp_type: [8, 128]
icmp_code: 0`);
  t.ok(dropped(h, { proto: 'icmp', src: '10.0.0.1', dst: '10.0.0.2', icmpType: 8 }), 'echo request');
  t.notOk(dropped(h, { proto: 'icmp', src: '10.0.0.1', dst: '10.0.0.2', icmpType: 13 }), 'timestamp');
  t.notOk(dropped(h, { proto: 'icmp', src: '10.0.0.1', dst: '10.0.0.2', icmpType: 8, icmpCode: 1 }), 'code 1');
  t.ok(dropped(h, { proto: 'icmp', src: 'fd00::1', dst: 'fd00::2', icmpType: 128 }), 'ICMPv6 echo request');
});

t.test('TCP flags of the first packet', async (t) => {
  const h = dropper(`proto: tcp
tcp_flags: { set: [ACK], not_set: [SYN] }`);
  t.notOk(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', flags: SYN }), 'a SYN opens normally');
  t.ok(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', flags: ACK | PSH, payload: 'x' }), 'a flow picked up mid-stream starts with ACK');
  t.ok(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', flags: ACK | FIN }));
});

t.test('direction: from_initiator, to_initiator, either', async (t) => {
  const fwd = dropper(`src: 10.0.0.0/24
dst: 10.9.0.0/24`);
  t.ok(dropped(fwd, { src: '10.0.0.5', dst: '10.9.0.5' }), 'opened from src');
  t.notOk(dropped(fwd, { src: '10.9.0.5', dst: '10.0.0.5' }), 'opened from dst');
  const rev = dropper(`src: 10.0.0.0/24
dst: 10.9.0.0/24
direction: to_initiator`);
  t.notOk(dropped(rev, { src: '10.0.0.5', dst: '10.9.0.5' }), 'to_initiator: src is the side that answers');
  t.ok(dropped(rev, { src: '10.9.0.5', dst: '10.0.0.5' }));
  const both = dropper(`proto: tcp
src: 10.0.0.0/24
dst: 10.9.0.0/24
dst_ports: 22
direction: either`);
  t.ok(dropped(both, { src: '10.0.0.5', dst: '10.9.0.5', dport: 22 }));
  t.ok(dropped(both, { src: '10.9.0.5', dst: '10.0.0.5', sport: 22, dport: 40000 }), 'the reverse reading swaps ports too');
  t.notOk(dropped(both, { src: '10.9.0.5', dst: '10.0.0.5', dport: 22 }), 'reverse reading: port 22 must be on the 10.0.0.0/24 side');
});

t.test('endpoint scopes: the endpoint id picks the rules; unknown endpoints get the default scope', async (t) => {
  const h = Harness.from(`version: 1
default_action: drop
rules:
  - name: default-web
    action: pass
    proto: tcp
    dst_ports: 80
scopes:
  tenant-a:
    endpoints: [vpce-0a1b2c3d4e5f60718]
    default_action: pass
    rules:
      - name: a-no-ssh
        action: drop
        proto: tcp
        dst_ports: 22
  tenant-b:
    endpoints: [VPCE-0123456789ABCDEF0]
    default_action: reject
`);
  t.notOk(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', dport: 443, endpoint: 'vpce-0a1b2c3d4e5f60718' }), 'tenant-a default pass');
  t.ok(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', dport: 22, endpoint: 'vpce-0a1b2c3d4e5f60718' }), 'tenant-a rule');
  t.ok(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', dport: 443 }), 'no endpoint option: default scope (drop)');
  t.ok(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', dport: 443, endpoint: 'vpce-0fffffffffffffff0' }), 'unlisted endpoint: default scope');
  t.notOk(dropped(h, { src: '10.0.0.1', dst: '10.0.0.2', dport: 80, endpoint: 'vpce-0fffffffffffffff0' }), 'default scope rule');
  const o = h.send({ flow: 999, src: '10.0.0.1', dst: '10.0.0.2', dport: 80, endpoint: 'vpce-0123456789abcdef0' });
  t.equal(o.action, ACTION.REJECT, 'endpoint ids match case-insensitively (tenant-b)');
  t.equal(h.logs.at(-1)?.endpointId, 'vpce-0123456789abcdef0', 'the log names the endpoint');
  t.equal(h.logs.at(-1)?.scope, 'tenant-b');
});
