/**
 * Ways around the firewall (issue 8), tried through the lab with real packets: raw segments crafted by
 * test/e2e/fixtures/evasion.py in the client namespace, real kernel TCP, one appliance running
 * test/e2e/fixtures/evasion-policy.yaml. Every subtest asserts on what the server namespace actually received:
 * the HTTP server's request log (test/e2e/fixtures/evasion-servers.mjs) or an AF_PACKET capture on its interface.
 */
import t from 'tap';
import { join } from 'node:path';
import { startLab, type ApplianceHandle, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces, LAB_ADDR } from '../../src/lab/netns.js';
import { ROOT, e2ePrerequisites, uniqueLabId, waitForOutput, jsonLines, type Json } from './fixtures/lab-helpers.js';

const FIXTURES = join(ROOT, 'test', 'e2e', 'fixtures');
const POLICY = join(FIXTURES, 'evasion-policy.yaml');
const SERVERS = join(FIXTURES, 'evasion-servers.mjs');
const EVASION = join(FIXTURES, 'evasion.py');
const WEB_PORT = 8080; // web-allowed: Host allowed.example passes; web-other: any other Host is rejected
const ECHO_PORT = 7000; // echo: pass (no name rule)
const SINK_PORT = 2222; // no rule: default drop
const SENTINEL_PORT = 9999; // sentinel: UDP pass
const SERVER4 = LAB_ADDR.server4;
const CLIENT4 = LAB_ADDR.client4;
/** The flood comes from the same client as the real request (so both land on the same worker's slots). */
const FLOOD_SRC = CLIENT4;
const FLOOD_SYNS = 20_000;
const WAIT_MS = 10_000;

const problems = await e2ePrerequisites(['curl', 'python3']);
if (problems.length > 0) {
  t.fail(`the firewall evasion e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('fwev');
  let lab: Lab | undefined;
  let appliance: ApplianceHandle | undefined;
  let servers: LabProcess | undefined;
  let capture: LabProcess | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const L = (): Lab => lab as Lab;

  t.before(async () => {
    lab = await startLab({ id });
    appliance = await lab.startAppliance({ policy: POLICY, workers: 2 });
    servers = lab.spawn('server', [process.execPath, SERVERS]);
    await waitForOutput(servers, /"event":"ready"/);
    capture = lab.spawn('server', ['python3', EVASION, 'capture', 'eth0', 'MIDSTREAM-ATTACK', 'PICKUP-OK', 'SENTINEL']);
    await waitForOutput(capture, /"event":"ready"/);
  });

  const requests = (match: Json): Json[] =>
    jsonLines((servers as LabProcess).stdout()).filter((e) => e['event'] === 'request' && Object.entries(match).every(([k, v]) => e[k] === v));
  const captured = (marker: string): Json[] => jsonLines((capture as LabProcess).stdout()).filter((e) => e['event'] === 'packet' && e['marker'] === marker);
  const py = async (args: string[]): Promise<Json> => {
    const r = await L().exec('client', ['python3', EVASION, ...args], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`evasion.py ${args[0]} failed (${r.code}): ${r.stderr}`);
    const lines = jsonLines(r.stdout);
    return lines[lines.length - 1] ?? {};
  };
  /** Waits until `probe` is true (polling the server's output every 25 ms), or fails after WAIT_MS. */
  const until = async (what: string, probe: () => boolean): Promise<void> => {
    const deadline = Date.now() + WAIT_MS;
    while (!probe()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  /** A UDP sentinel the policy passes: once the capture has it, every packet sent before it has arrived or never will. */
  let sentinels = 0;
  const flushCapture = async (): Promise<void> => {
    sentinels++;
    await py(['udp', CLIENT4, SERVER4, String(SENTINEL_PORT), `SENTINEL-${sentinels}`]);
    await until('the sentinel to reach the server', () => captured('SENTINEL').length >= sentinels);
  };
  const curl = async (host: string, path: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    L().exec('client', ['curl', '-sS', '--connect-timeout', '5', '--max-time', '10', '-H', `Host: ${host}`, `http://${SERVER4}:${WEB_PORT}${path}`], { timeoutMs: 20_000 });

  t.test('finding 1: a segment without a handshake is judged in its own reading only', async (t) => {
    // The reversed reading (10.77.2.2 → 10.77.1.2) matches "internal-traffic"; its own reading (→ 10.77.2.2:2222)
    // matches nothing: default drop. Before the fix the better of the two readings won and the segment got through.
    await py(['midstream', CLIENT4, '40001', SERVER4, String(SINK_PORT), 'MIDSTREAM-ATTACK-1']);
    await py(['midstream', CLIENT4, '40002', SERVER4, String(SINK_PORT), 'MIDSTREAM-ATTACK-2']);
    // A mid-stream segment whose own reading is allowed is still picked up (GWLB failover).
    await py(['midstream', CLIENT4, '40003', SERVER4, String(ECHO_PORT), 'PICKUP-OK']);
    await flushCapture();
    t.same(captured('MIDSTREAM-ATTACK'), [], 'no segment to the forbidden port reached the server namespace');
    t.equal(captured('PICKUP-OK').length, 1, 'the segment whose own reading is allowed was picked up and delivered');
  });

  t.test('finding 3: a segment starting before ISN+1 cannot lend its name to the stream', async (t) => {
    const decoy = 'GET /decoy HTTP/1.1\\r\\nHost: allowed.example\\r\\n\\r\\n';
    const real = 'GET /before-isn HTTP/1.1\\r\\nHost: blocked.example\\r\\nConnection: close\\r\\n\\r\\n';
    const r = await py(['before-isn', SERVER4, String(WEB_PORT), decoy, real]);
    t.equal(r['event'], 'sent', `the crafted segment was sent into the kernel connection: ${JSON.stringify(r)}`);
    // Control: the same server answers a legitimate request for the allowed name.
    const ok = await curl('allowed.example', '/control-3');
    t.equal(ok.code, 0, `curl with an allowed Host works ${ok.stderr}`);
    await until('the control request', () => requests({ url: '/control-3' }).length === 1);
    t.same(requests({ url: '/before-isn' }), [], 'the server never received the request for blocked.example');
    t.same(requests({ host: 'blocked.example' }), [], 'no request for blocked.example at all');
  });

  t.test('finding 4: every request on a keep-alive connection is checked, not only the first', async (t) => {
    const one = 'GET /keepalive-1 HTTP/1.1\\r\\nHost: allowed.example\\r\\n\\r\\n';
    const two = 'GET /keepalive-2 HTTP/1.1\\r\\nHost: blocked.example\\r\\n\\r\\n';
    const r = await py(['keepalive', SERVER4, String(WEB_PORT), one, two]);
    t.match(r, { event: 'error', responses: ['HTTP/1.1 200 OK'] }, `the first request is answered, then the connection ends: ${JSON.stringify(r)}`);
    t.equal(requests({ url: '/keepalive-1' }).length, 1, 'the allowed first request reached the server');

    const p1 = 'GET /pipelined-1 HTTP/1.1\\r\\nHost: allowed.example\\r\\n\\r\\n';
    const p2 = 'GET /pipelined-2 HTTP/1.1\\r\\nHost: blocked.example\\r\\n\\r\\n';
    const p = await py(['pipelined', SERVER4, String(WEB_PORT), p1, p2]);
    t.equal(p['event'], 'error', `pipelined requests with a forbidden Host: the connection is refused ${JSON.stringify(p)}`);

    const ok = await curl('allowed.example', '/control-4');
    t.equal(ok.code, 0, `curl with an allowed Host works ${ok.stderr}`);
    await until('the control request', () => requests({ url: '/control-4' }).length === 1);
    t.same(requests({ url: '/keepalive-2' }), [], 'the second, forbidden request never reached the server');
    t.same(requests({ url: '/pipelined-2' }), [], 'the pipelined forbidden request never reached the server');
    t.same(requests({ host: 'blocked.example' }), [], 'no request for blocked.example at all');
  });

  t.test('finding 5: a 20,000-SYN flood does not stop an allowed HTTP request', async (t) => {
    const flood = L().exec('client', ['python3', EVASION, 'synflood', FLOOD_SRC, SERVER4, String(WEB_PORT), String(FLOOD_SYNS)], { timeoutMs: 120_000 });
    const during = await curl('allowed.example', '/during-flood');
    const f = await flood;
    t.equal(f.code, 0, `the flood ran: ${f.stdout.trim()} ${f.stderr}`);
    t.match(jsonLines(f.stdout)[0], { event: 'flooded', count: FLOOD_SYNS });
    // The flood is over; its flows (reset by the client's kernel, which has no socket for them) are still in the
    // flow table for the closed timeout, and a SYN that took a name slot would still hold it (max_wait_ms 10 s).
    const after = await curl('allowed.example', '/after-flood');
    t.equal(during.code, 0, `a request during the flood succeeded ${during.stderr}`);
    t.equal(after.code, 0, `a request right after the flood succeeded ${after.stderr}`);
    await until('both requests at the server', () => requests({ url: '/after-flood' }).length === 1);
    t.equal(requests({ url: '/during-flood', host: 'allowed.example' }).length, 1, 'the server received the request made during the flood');
    t.equal(requests({ url: '/after-flood', host: 'allowed.example' }).length, 1, 'and the one made right after it');
    const stats = await L().fetchInGateway(`${(appliance as ApplianceHandle).statsUrl}/stats`);
    t.equal(stats.status, 200);
  });
}
