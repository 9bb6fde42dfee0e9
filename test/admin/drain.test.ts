/**
 * POST /drain through the real appliance: after it, /healthz answers 503 saying "draining" (GWLB stops sending new
 * flows here), while the packets of a TCP flow established before the drain still come back to GWLB. POST /drain
 * is idempotent, lives on the stats listener (so it needs the stats bearer token when one is set) and is unknown
 * on the health listener.
 */
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGeneve } from '../../src/geneve/codec.js';
import { buildIPv4Tcp } from '../../src/packet/build.js';
import { spawnSync } from 'node:child_process';
import { startAppliance, randomPort, randomLoopback, getJson, REPO, type Appliance } from '../helpers/appliance.js';
import { waitFor } from '../helpers/wait.js';

const APPLIANCE = '127.0.0.1';
const port = randomPort();
const gwlb = randomLoopback();
const TOKEN = 'drain-test-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'gwi-drain-'));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, TOKEN + '\n');

let app: Appliance;
const returnsSock: Socket = createSocket('udp4');
const sender: Socket = createSocket('udp4');
const returned = new Set<string>();

t.before(async () => {
  app = await startAppliance(['--listen', APPLIANCE, '--port', String(port), '--admin-listen', '127.0.0.1:0', '--stats-token-file', tokenFile, '--workers', '1', '--health-interval-ms', '100', '--policy', 'policies/default.yaml']);
  returnsSock.on('message', (msg) => returned.add(msg.toString('hex')));
  returnsSock.bind(6081, gwlb);
  await once(returnsSock, 'listening');
  sender.bind(0, gwlb);
  await once(sender, 'listening');
  await waitFor(async () => (await getJson(`${app.adminUrl}/healthz`)).status === 200, 10_000, 'appliance healthy');
});

t.teardown(async () => {
  sender.close();
  returnsSock.close();
  await app?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const CLIENT = { addr: '10.40.0.5', port: 40123 };
const SERVER = { addr: '10.50.0.9', port: 443 };
const ISN_C = 1_000_000;
const ISN_S = 7_000_000;

function segment(fromClient: boolean, seq: number, ack: number, flags: number, payload = ''): Buffer {
  const [a, b] = fromClient ? [CLIENT, SERVER] : [SERVER, CLIENT];
  const inner = buildIPv4Tcp({ src: a.addr, dst: b.addr, srcPort: a.port, dstPort: b.port, seq, ack, flags, payload: Buffer.from(payload) });
  return encodeGeneve({ endpointIdHi: 0x0d0d0d0d, endpointIdLo: 0x00000001, flowCookie: 0x4242 }, inner);
}

/** Sends one GENEVE datagram as GWLB would and awaits its return (same bytes back to GWLB's address, port 6081). */
async function roundTrip(datagram: Buffer, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => sender.send(datagram, port, APPLIANCE, (err) => (err ? reject(err) : resolve())));
  await waitFor(() => returned.has(datagram.toString('hex')), 5000, `${what} returned to GWLB`);
}

/** The container HEALTHCHECK script (docker/Dockerfile) against this appliance's health listener. */
function healthcheck(): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'dist', 'admin', 'healthcheck.js'), new URL(app.adminUrl).host], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout };
}

function drain(token: string | undefined): Promise<Response> {
  return fetch(`${app.statsUrl}/drain`, { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
}

t.test('after POST /drain, /healthz is 503 "draining" and an established flow keeps flowing', async (t) => {
  const SYN = 0x02;
  const ACK = 0x10;
  const PSH_ACK = 0x18;
  await roundTrip(segment(true, ISN_C, 0, SYN), 'SYN');
  await roundTrip(segment(false, ISN_S, ISN_C + 1, SYN | ACK), 'SYN-ACK');
  await roundTrip(segment(true, ISN_C + 1, ISN_S + 1, ACK), 'ACK');
  await roundTrip(segment(true, ISN_C + 1, ISN_S + 1, PSH_ACK, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n'), 'request before the drain');

  t.match(healthcheck(), { code: 0, out: /^healthy/ }, 'HEALTHCHECK: healthy');
  t.equal((await drain(undefined)).status, 401, 'drain needs the stats token when one is set');
  t.equal((await getJson(`${app.adminUrl}/healthz`)).status, 200, 'a refused drain changes nothing');
  t.equal((await fetch(`${app.adminUrl}/drain`, { method: 'POST' })).status, 405, 'the health listener has no /drain (it answers GET /healthz only)');

  const first = await drain(TOKEN);
  t.equal(first.status, 202, 'the first drain starts draining');
  const firstBody = (await first.json()) as { status: string; since: string; alreadyDraining: boolean };
  t.match(firstBody, { status: 'draining', alreadyDraining: false });

  const h = await getJson(`${app.adminUrl}/healthz`);
  t.equal(h.status, 503, 'health answers 503: GWLB sends no new flows here');
  t.equal(h.body['status'], 'draining');
  t.match(h.body['reasons'], [/draining since/]);

  await roundTrip(segment(false, ISN_S + 1, ISN_C + 28, PSH_ACK, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 'response after the drain');
  await roundTrip(segment(true, ISN_C + 28, ISN_S + 39, ACK), 'ACK after the drain');
  await roundTrip(segment(true, ISN_C + 28, ISN_S + 39, 0x11), 'FIN after the drain');

  t.match(healthcheck(), { code: 0, out: /^draining/ }, 'HEALTHCHECK: draining is healthy for the container, so it is not replaced while flows finish');

  const again = await drain(TOKEN);
  t.equal(again.status, 200, 'a second drain is accepted');
  t.same(await again.json(), { ...firstBody, alreadyDraining: true }, 'and changes nothing: same time as the first');
  t.equal((await getJson(`${app.adminUrl}/healthz`)).status, 503, 'still draining');
  const stats = await fetch(`${app.statsUrl}/stats`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.match(await stats.json(), { draining: true });
  t.equal(app.logs.filter((l) => l['msg'] === 'draining').length, 1, 'one draining log line, at the first drain');

  await app.stop();
  t.match(healthcheck(), { code: 1, out: /^no answer from/ }, 'HEALTHCHECK: a stopped appliance is unhealthy');
});
