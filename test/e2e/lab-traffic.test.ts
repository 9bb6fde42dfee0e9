/**
 * Real traffic through the lab: client namespace → gateway (GWLB emulator) → appliance (GENEVE) → server
 * namespace, and back. Every exchange checks its bytes arrived intact, and the emulator must have accepted every
 * return the appliance sent (same header, same cookie, IPs swapped, ports kept, valid checksum).
 */
import t from 'tap';
import { join } from 'node:path';
import { startLab, type ApplianceHandle, type Lab } from '../../src/lab/lab.js';
import { cleanup, labNamespaces, listNamespaces } from '../../src/lab/netns.js';
import {
  DNS_PORT,
  HTTP_PORT,
  LAB_FIXTURES,
  PASS_ALL_POLICY,
  e2ePrerequisites,
  randomFile,
  sha256File,
  startServers,
  uniqueLabId,
} from './fixtures/lab-helpers.js';

const MB10 = 10 * 1024 * 1024;
const problems = await e2ePrerequisites(['curl', 'iperf3', 'ping']);
if (problems.length > 0) {
  t.fail(`the lab e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('traf');
  let lab: Lab | undefined;
  let appliance: ApplianceHandle | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });
  const dir = t.testdir({});
  const blob = randomFile(dir, 'blob.bin', MB10);
  const blobSha = sha256File(blob);

  t.before(async () => {
    lab = await startLab({ id });
    appliance = await lab.startAppliance({ policy: PASS_ALL_POLICY, workers: 1 });
    await startServers(lab, dir);
    lab.spawn('server', ['iperf3', '-s', '-p', '5201']);
  });

  const L = (): Lab => lab as Lab;

  t.test('ping: IPv4, IPv6 and an 8000-byte jumbo packet that must not fragment', async (t) => {
    for (const argv of [
      ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.77.2.2'],
      ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd77:2::2'],
      ['ping', '-c', '2', '-i', '0.2', '-W', '2', '-s', '8000', '-M', 'do', '10.77.2.2'],
    ]) {
      const r = await L().exec('client', argv, { timeoutMs: 10_000 });
      t.equal(r.code, 0, argv.join(' '));
      t.match(r.stdout, / 0% packet loss/);
    }
  });

  t.test('HTTP download of 10 MB arrives intact', async (t) => {
    const out = join(dir, 'download.bin');
    const r = await L().exec('client', ['curl', '-sS', '--fail', '--max-time', '60', '-o', out, `http://10.77.2.2:${HTTP_PORT}/blob.bin`], {
      timeoutMs: 70_000,
    });
    t.equal(r.code, 0, r.stderr);
    t.equal(sha256File(out), blobSha);
  });

  t.test('HTTP upload of 10 MB arrives intact', async (t) => {
    const r = await L().exec(
      'client',
      ['curl', '-sS', '--fail', '--max-time', '60', '-T', blob, `http://10.77.2.2:${HTTP_PORT}/upload.bin`],
      { timeoutMs: 70_000 },
    );
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout.trim(), blobSha, 'server hashed what it received');
    t.equal(sha256File(join(dir, 'upload.bin')), blobSha);
  });

  t.test('IPv6 HTTP download arrives intact', async (t) => {
    const out = join(dir, 'download6.bin');
    const r = await L().exec('client', ['curl', '-sS', '--fail', '-g', '--max-time', '60', '-o', out, `http://[fd77:2::2]:${HTTP_PORT}/blob.bin`], {
      timeoutMs: 70_000,
    });
    t.equal(r.code, 0, r.stderr);
    t.equal(sha256File(out), blobSha);
  });

  t.test('DNS-style UDP request/response, IPv4 and IPv6, byte for byte', async (t) => {
    for (const host of ['10.77.2.2', 'fd77:2::2']) {
      const r = await L().exec('client', [process.execPath, join(LAB_FIXTURES, 'dns-client.mjs'), host, String(DNS_PORT), '50'], { timeoutMs: 60_000 });
      t.equal(r.code, 0, `${host}: ${r.stdout} ${r.stderr}`);
      t.same(JSON.parse(r.stdout), { sent: 50, ok: 50, bad: 0, timeouts: 0 }, host);
    }
  });

  t.test('iperf3 TCP for 3 s: a multi-megabyte stream flows through the appliance', async (t) => {
    const r = await L().exec('client', ['iperf3', '-c', '10.77.2.2', '-p', '5201', '-t', '3', '-J'], { timeoutMs: 30_000 });
    t.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { end: { sum_sent: { bytes: number; bits_per_second: number }; sum_received: { bytes: number } } };
    t.ok(j.end.sum_received.bytes > 1_000_000, `received ${j.end.sum_received.bytes} bytes`);
    // iperf3 counts "sent" as written to the socket and the server stops counting at the end of the test, so the
    // bytes still in flight (socket buffers) are missing from "received": how many depends on the machine's load, so
    // the sent/received ratio is a diagnostic here. TCP cannot lose bytes silently; byte-exact checks are the HTTP
    // tests'. What this test holds is that a multi-megabyte stream crossed the appliance and ended cleanly (exit 0).
    t.comment(`iperf3 TCP: sent ${j.end.sum_sent.bytes}, received ${j.end.sum_received.bytes} bytes`);
    t.comment(`iperf3 TCP through the lab: ${(j.end.sum_sent.bits_per_second / 1e6).toFixed(0)} Mbit/s`);
  });

  t.test('iperf3 UDP for 3 s at 10 Mbit/s: (almost) every datagram arrives', async (t) => {
    const r = await L().exec('client', ['iperf3', '-c', '10.77.2.2', '-p', '5201', '-u', '-b', '10M', '-l', '1400', '-t', '3', '-J'], {
      timeoutMs: 30_000,
    });
    t.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { end: { sum: { packets: number; lost_packets: number; lost_percent: number } } };
    t.ok(j.end.sum.packets > 1000, `${j.end.sum.packets} datagrams`);
    // UDP has no retransmission: on a busy 2-core machine a burst can overflow a socket buffer (seen: 3.6 % at
    // 20 Mbit/s while other suites ran), and how much depends on the load. Byte-exact UDP checks are the DNS test's;
    // here the bound only catches a path that drops systematically (every other datagram, or all of them).
    t.ok(j.end.sum.lost_percent < 25, `lost ${j.end.sum.lost_packets} of ${j.end.sum.packets}`);
    t.comment(`iperf3 UDP: lost ${j.end.sum.lost_packets} of ${j.end.sum.packets}`);
  });

  t.test('the emulator accepted every return and the appliance saw the traffic', async (t) => {
    const c = await L().counters();
    const e = c.emulator;
    t.equal(e.returnsRejectedTotal, 0, `rejected returns: ${JSON.stringify(e.counters.returnsRejected)}`);
    t.ok(e.counters.returnsAccepted > 10_000, `${e.counters.returnsAccepted} returns accepted`);
    t.equal(e.counters.noTargetDrops, 0);
    t.equal(e.counters.innerUndecodable, 0);
    t.equal(e.targets[0]?.state, 'healthy');
    const stats = c.appliances[(appliance as ApplianceHandle).name] as Record<string, unknown>;
    t.ok(typeof stats.rx_packets === 'number' && stats.rx_packets >= e.counters.returnsAccepted, 'appliance received at least what came back');
  });

  t.test('with the appliance stopped, traffic fails: the path really goes through it', async (t) => {
    const before = await L().emulatorStatus();
    await (appliance as ApplianceHandle).stop();
    const ping = await L().exec('client', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.77.2.2'], { timeoutMs: 10_000 });
    t.not(ping.code, 0, 'ping fails');
    const curl = await L().exec('client', ['curl', '-sS', '--max-time', '2', '-o', '/dev/null', `http://10.77.2.2:${HTTP_PORT}/blob.bin`], {
      timeoutMs: 10_000,
    });
    t.not(curl.code, 0, 'curl fails');
    const after = await L().emulatorStatus();
    t.ok(
      (after.targets[0]?.encapsulatedPackets ?? 0) > (before.targets[0]?.encapsulatedPackets ?? 0),
      'the emulator still sent to the only target (GWLB fails open when all targets are unhealthy)',
    );
    t.equal(after.counters.returnsAccepted, before.counters.returnsAccepted, 'nothing came back');
  });

  t.test('down() removes every namespace of the lab', async (t) => {
    await L().down();
    const left = (await listNamespaces()).filter((n) => n.startsWith(labNamespaces(id).prefix));
    t.same(left, []);
  });
}
