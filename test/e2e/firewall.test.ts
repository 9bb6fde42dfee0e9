/**
 * The firewall end to end: real clients and servers in the lab (client namespace → GWLB emulator → appliance
 * over GENEVE → server namespace), one appliance running test/e2e/fixtures/firewall-policy.yaml (deny by
 * default). Each subtest checks what the client saw, what the server saw, the appliance's /stats and its verdict
 * log (JSON lines on its stdout, in the lab's appliance log file). The policy file lives in this test's own
 * directory, which the appliance (in the gateway namespace, same file system) watches for reloads.
 */
import t from 'tap';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startLab, type ApplianceHandle, type Lab, type LabProcess } from '../../src/lab/lab.js';
import { cleanup, labNamespaces, LAB_ADDR, run } from '../../src/lab/netns.js';
import { ROOT, e2ePrerequisites, randomFile, sha256File, uniqueLabId, waitForOutput, jsonLines, type Json } from './fixtures/lab-helpers.js';

const FIXTURES = join(ROOT, 'test', 'e2e', 'fixtures');
const POLICY_FIXTURE = join(FIXTURES, 'firewall-policy.yaml');
const SERVERS = join(FIXTURES, 'firewall-servers.mjs');
const CONNECT = join(FIXTURES, 'firewall-connect.mjs');
const STREAM = join(FIXTURES, 'firewall-stream.mjs');
// Ports of firewall-servers.mjs and what firewall-policy.yaml does with them.
const WEB_PORT = 8080; // rule "web": pass
const FIXED_PORT = 8081; // rule "new-web-port": drop, until the reload test fixes it
const SSH_PORT = 22; // rule "block-ssh": drop
const REJECT_PORT = 2323; // rule "reject-2323": reject
const TLS_PORT = 8443; // "tls-allowed-names" (sni allowed.example): pass; "tls-other-names": reject
const V6_BLOCKED_PORT = 9000; // "block-9000-v6": drop for fd77:2::/64 only; IPv4 passes by "web"
const ECHO_PORT = 7000; // "web": pass
const SERVER4 = LAB_ADDR.server4;
const SERVER6 = LAB_ADDR.server6;
const CLIENT4 = LAB_ADDR.client4;
/** How long a client waits before calling a dropped connection timed out (SYN retransmits at 1 s). */
const DROP_WAIT_MS = 2_000;
/** Bounds for waiting on the appliance (stats, log lines, reloads). */
const WAIT_MS = 5_000;
const BLOB_BYTES = 1024 * 1024; // 1 MiB

interface ConnectResult {
  outcome: 'connected' | 'timeout' | 'error';
  code: string | null;
  ms: number;
}

interface ApplianceStats {
  originated: number;
  internal_faults: number;
  drops: Record<string, number>;
  workers: { index: number; policy_generation: number }[];
  policy: { file: string; generation: number; reloadOk: number; reloadFailed: number; lastErrors: string[] };
}

/** Our environment minus what tap injects into Node children (its loader and coverage would slow fixtures). */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k === 'NODE_OPTIONS' || k.startsWith('NODE_V8_COVERAGE') || k.startsWith('_TAPJS')) delete env[k];
  return env;
}

/** Polls `probe` every 25 ms until it returns a value (not undefined), or throws after timeoutMs. */
async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}

const problems = await e2ePrerequisites(['curl', 'openssl']);
if (problems.length > 0) {
  t.fail(`the firewall e2e tests cannot run on this machine:\n  - ${problems.join('\n  - ')}`);
} else {
  const id = uniqueLabId('fw');
  let lab: Lab | undefined;
  let appliance: ApplianceHandle | undefined;
  let servers: LabProcess | undefined;
  t.teardown(async () => {
    await lab?.down();
    await cleanup(labNamespaces(id).prefix);
  });

  const dir = t.testdir({ www: {}, policy: {}, tls: {}, out: {} });
  const www = join(dir, 'www');
  const out = join(dir, 'out');
  const policyFile = join(dir, 'policy', 'policy.yaml');
  const certFile = join(dir, 'tls', 'cert.pem');
  const keyFile = join(dir, 'tls', 'key.pem');
  const blobSha = sha256File(randomFile(www, 'blob.bin', BLOB_BYTES));
  const policyText = readFileSync(POLICY_FIXTURE, 'utf8');

  const L = (): Lab => lab as Lab;
  const A = (): ApplianceHandle => appliance as ApplianceHandle;

  t.before(async () => {
    // A certificate for both names, so curl can verify either (the firewall, not TLS, must make the difference).
    const cert = run(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=allowed.example',
        '-addext', 'subjectAltName=DNS:allowed.example,DNS:blocked.example', '-keyout', keyFile, '-out', certFile],
      { timeoutMs: 20_000 },
    );
    copyFileSync(POLICY_FIXTURE, policyFile);
    lab = await startLab({ id });
    appliance = await lab.startAppliance({ policy: policyFile, workers: 2 });
    const c = await cert;
    if (c.code !== 0) throw new Error(`openssl failed: ${c.stderr}`);
    servers = lab.spawn('server', [process.execPath, SERVERS, www, certFile, keyFile]);
    await waitForOutput(servers, /"event":"ready"/);
  });

  const stats = async (): Promise<ApplianceStats> => {
    const r = await L().fetchInGateway(`${A().statsUrl}/stats`);
    if (r.status !== 200) throw new Error(`/stats answered ${r.status} ${r.error ?? r.body}`);
    return JSON.parse(r.body) as ApplianceStats;
  };
  /** Every JSON line of the appliance log: verdict events (stdout) and operational events (stderr). */
  const applianceLog = (): Json[] => jsonLines(readFileSync(A().logFile, 'utf8'));
  const verdicts = (match: Json): Json[] =>
    applianceLog().filter((e) => e['stage'] === 'firewall' && Object.entries(match).every(([k, v]) => e[k] === v));
  /** Waits for the verdict-log events matching `match` to number more than `before`; returns the newest. */
  const nextVerdict = (match: Json, before: number): Promise<Json> =>
    waitUntil(`a verdict log line ${JSON.stringify(match)}`, WAIT_MS, () => {
      const v = verdicts(match);
      return v.length > before ? v[v.length - 1] : undefined;
    });
  const serverEvents = (match: Json): Json[] =>
    jsonLines((servers as LabProcess).stdout()).filter((e) => Object.entries(match).every(([k, v]) => e[k] === v));

  const connect = async (host: string, port: number, timeoutMs: number): Promise<ConnectResult> => {
    const r = await L().exec('client', [process.execPath, CONNECT, host, String(port), String(timeoutMs)], { timeoutMs: timeoutMs + 10_000, env: childEnv() });
    if (r.code !== 0) throw new Error(`connect client failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as ConnectResult;
  };
  /** curl from the client into out/NAME; returns curl's exit code, stderr and the file's SHA-256 when it exists. */
  const curl = async (name: string, args: string[]): Promise<{ code: number; stderr: string; sha: string | null }> => {
    const file = join(out, name);
    const r = await L().exec('client', ['curl', '-sS', '--fail', '--connect-timeout', '3', '--max-time', '15', '-o', file, ...args], { timeoutMs: 25_000 });
    let sha: string | null = null;
    try {
      sha = sha256File(file);
    } catch {
      // curl wrote nothing
    }
    return { code: r.code, stderr: r.stderr.trim(), sha };
  };

  t.test('allowed HTTP passes: a 1 MiB download on an allowed port arrives byte for byte', async (t) => {
    const r = await curl('web.bin', [`http://${SERVER4}:${WEB_PORT}/blob.bin`]);
    t.equal(r.code, 0, `curl exits 0 ${r.stderr}`);
    t.equal(r.sha, blobSha, 'same SHA-256 as the served file');
  });

  t.test('SSH to a blocked port is dropped: the client times out, the server never sees it, stats and the verdict log say which rule', async (t) => {
    const before = await stats();
    const logged = verdicts({ rule: 'block-ssh' }).length;
    const r = await connect(SERVER4, SSH_PORT, DROP_WAIT_MS);
    t.equal(r.outcome, 'timeout', `connect to ${SSH_PORT}: ${JSON.stringify(r)}`);
    const after = await waitUntil('policy_drop to grow', WAIT_MS, async () => {
      const s = await stats();
      return (s.drops['policy_drop'] ?? 0) > (before.drops['policy_drop'] ?? 0) ? s : undefined;
    });
    t.ok((after.drops['policy_drop'] ?? 0) > (before.drops['policy_drop'] ?? 0), `policy_drop ${before.drops['policy_drop']} → ${after.drops['policy_drop']}`);
    const v = await nextVerdict({ rule: 'block-ssh' }, logged);
    t.match(v, { stage: 'firewall', action: 'drop', reason: 'firewall.rule', rule: 'block-ssh', proto: 6, src: CLIENT4, dst: SERVER4, dstPort: SSH_PORT }, 'the verdict log names the rule that dropped the flow');
    t.match(v['ruleSource'], /policy\.yaml:\d+:\d+$/, 'the log points at the rule in the policy file');
    t.equal(serverEvents({ event: 'accept', port: SSH_PORT }).length, 0, 'the SSH listener never accepted a connection');
  });

  t.test('a reject rule makes the client see a connection reset at once, and the server never sees the connection', async (t) => {
    const before = await stats();
    const logged = verdicts({ rule: 'reject-2323' }).length;
    const r = await connect(SERVER4, REJECT_PORT, 5_000);
    t.equal(r.outcome, 'error', `connect to ${REJECT_PORT}: ${JSON.stringify(r)}`);
    t.ok(r.code === 'ECONNREFUSED' || r.code === 'ECONNRESET', `reset seen by the client: ${r.code}`);
    t.ok(r.ms < 1_000, `refused after ${r.ms} ms (a drop would take the SYN timeout, ≥ 1 s)`);
    const after = await waitUntil('policy_reject and originated to grow', WAIT_MS, async () => {
      const s = await stats();
      return (s.drops['policy_reject'] ?? 0) > (before.drops['policy_reject'] ?? 0) && s.originated > before.originated ? s : undefined;
    });
    t.ok(after.originated > before.originated, `the appliance originated the RST (originated ${before.originated} → ${after.originated})`);
    const v = await nextVerdict({ rule: 'reject-2323' }, logged);
    t.match(v, { action: 'reject', reason: 'firewall.rule', rule: 'reject-2323', src: CLIENT4, dst: SERVER4, dstPort: REJECT_PORT }, 'the verdict log names the reject rule');
    t.equal(serverEvents({ event: 'accept', port: REJECT_PORT }).length, 0, 'the listener on the rejected port never accepted a connection');
  });

  t.test('SNI allow-list: HTTPS to allowed.example passes intact, blocked.example is refused before its ClientHello reaches the server', async (t) => {
    const loggedAllowed = verdicts({ rule: 'tls-allowed-names' }).length;
    const loggedOther = verdicts({ rule: 'tls-other-names' }).length;
    const ok = await curl('tls-allowed.bin', [
      '--cacert', certFile, '--resolve', `allowed.example:${TLS_PORT}:${SERVER4}`, `https://allowed.example:${TLS_PORT}/blob.bin`,
    ]);
    t.equal(ok.code, 0, `curl to allowed.example exits 0 ${ok.stderr}`);
    t.equal(ok.sha, blobSha, 'the HTTPS download arrived byte for byte');
    t.equal(serverEvents({ event: 'sni', servername: 'allowed.example' }).length, 1, 'the server read SNI allowed.example from the ClientHello');
    const va = await nextVerdict({ rule: 'tls-allowed-names' }, loggedAllowed);
    t.match(va, { action: 'pass', rule: 'tls-allowed-names', serverName: 'allowed.example', serverNameSource: 'tls', dstPort: TLS_PORT }, 'the firewall read allowed.example from the ClientHello and passed the flow by the SNI rule');

    const resetsBefore = serverEvents({ event: 'tls-error', message: 'read ECONNRESET' }).length;
    const started = Date.now();
    const bad = await curl('tls-blocked.bin', [
      '--cacert', certFile, '--resolve', `blocked.example:${TLS_PORT}:${SERVER4}`, `https://blocked.example:${TLS_PORT}/blob.bin`,
    ]);
    const tookMs = Date.now() - started;
    t.not(bad.code, 0, `curl blocked.example fails: ${bad.stderr}`);
    // curl exits 28 on its --max-time: anything else is the reset; the time taken is a diagnostic only.
    t.not(bad.code, 28, 'by a reset, not a timeout');
    t.comment(`curl to blocked.example failed after ${tookMs} ms`);
    t.equal(bad.sha, null, 'no body was written');
    // The firewall read the name from the ClientHello it held, and refused the flow by the catch-all TLS rule.
    const vb = await nextVerdict({ rule: 'tls-other-names' }, loggedOther);
    t.match(vb, { action: 'reject', reason: 'firewall.rule', rule: 'tls-other-names', serverName: 'blocked.example', serverNameSource: 'tls', dstPort: TLS_PORT }, 'the firewall read blocked.example from the ClientHello and rejected the flow');
    // The TCP handshake passed (the flow waited for its name), so the server accepted the connection, but the
    // ClientHello was held and discarded: the refusal was by name, after the handshake, not by port.
    await waitUntil('the TLS server to accept both connections', WAIT_MS, () => (serverEvents({ event: 'accept', port: TLS_PORT }).length >= 2 ? true : undefined));
    t.equal(serverEvents({ event: 'accept', port: TLS_PORT }).length, 2, 'the TLS server accepted both TCP connections');
    t.equal(serverEvents({ event: 'sni', servername: 'blocked.example' }).length, 0, 'no ClientHello for blocked.example reached the server');
    // reject answers both ends: the server's half of the refused connection is reset too, not left hanging.
    const serverReset = await waitUntil('the server to see its connection reset', WAIT_MS, () =>
      serverEvents({ event: 'tls-error', message: 'read ECONNRESET' }).length > resetsBefore ? true : undefined,
    ).catch(() => false);
    t.ok(serverReset, 'the server saw its side of the refused connection reset (read ECONNRESET)');
  });

  t.test('an IPv6 CIDR rule drops IPv6 to port 9000 while IPv4 to the same port passes', async (t) => {
    const logged = verdicts({ rule: 'block-9000-v6' }).length;
    const v4 = await curl('v4-9000.bin', [`http://${SERVER4}:${V6_BLOCKED_PORT}/blob.bin`]);
    t.equal(v4.code, 0, `IPv4 curl to ${V6_BLOCKED_PORT} exits 0 ${v4.stderr}`);
    t.equal(v4.sha, blobSha, 'IPv4 download intact');
    const v6web = await curl('v6-web.bin', ['-g', `http://[${SERVER6}]:${WEB_PORT}/blob.bin`]);
    t.equal(v6web.code, 0, `IPv6 curl to ${WEB_PORT} exits 0 ${v6web.stderr}`);
    t.equal(v6web.sha, blobSha, 'IPv6 itself goes through (download intact on an allowed port)');
    const r = await connect(SERVER6, V6_BLOCKED_PORT, DROP_WAIT_MS);
    t.equal(r.outcome, 'timeout', `IPv6 connect to ${V6_BLOCKED_PORT}: ${JSON.stringify(r)}`);
    const v = await nextVerdict({ rule: 'block-9000-v6' }, logged);
    t.match(v, { action: 'drop', rule: 'block-9000-v6', src: LAB_ADDR.client6, dst: SERVER6, dstPort: V6_BLOCKED_PORT }, 'dropped by the IPv6 CIDR rule');
  });

  /** Writes the policy the way an editor with atomic saves does: a temporary file renamed over the old one. */
  const writePolicy = (text: string): void => {
    const tmp = `${policyFile}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, policyFile);
  };
  const fixedText = policyText.replace(/(- name: new-web-port\n(?: {4}description: .*\n)? {4}action: )drop\n/, '$1pass\n');

  t.test('a reload that fixes a rule takes effect for new flows without disturbing an established stream', async (t) => {
    t.not(fixedText, policyText, 'the fixture has the rule to fix');
    const logged = verdicts({ rule: 'new-web-port' }).length;
    const blocked = await curl('8081-before.bin', ['--connect-timeout', '1.5', `http://${SERVER4}:${FIXED_PORT}/blob.bin`]);
    t.equal(blocked.code, 28, `before the fix, ${FIXED_PORT} times out: ${blocked.stderr}`);
    t.match(await nextVerdict({ rule: 'new-web-port' }, logged), { action: 'drop', dstPort: FIXED_PORT }, 'dropped by the mistaken rule');

    const stream = L().spawn('client', [process.execPath, STREAM, SERVER4, String(ECHO_PORT), '30000'], { env: childEnv() });
    await waitForOutput(stream, /"event":"connected"/);
    const progress = (): { sent: number; echoed: number } => {
      const p = jsonLines(stream.stdout()).filter((e) => e['event'] === 'progress');
      const last = p[p.length - 1];
      return { sent: Number(last?.['sent'] ?? 0), echoed: Number(last?.['echoed'] ?? 0) };
    };
    await waitUntil('the stream to carry data', WAIT_MS, () => (progress().echoed >= 10 ? true : undefined));

    const gen0 = (await stats()).policy.generation;
    writePolicy(fixedText);
    const s = await waitUntil('every worker to run the reloaded policy', WAIT_MS, async () => {
      const st = await stats();
      return st.policy.generation > gen0 && st.workers.every((w) => w.policy_generation === st.policy.generation) ? st : undefined;
    });
    t.equal(s.policy.generation, gen0 + 1, 'exactly one reload');
    t.equal(s.workers.length, 2, 'both workers report');
    const reloaded = applianceLog().filter((e) => e['msg'] === 'policy_reloaded');
    t.match(reloaded[reloaded.length - 1], { msg: 'policy_reloaded', why: 'file-change', generation: gen0 + 1 }, 'the appliance logged the reload');
    const echoedAtReload = progress().echoed;

    const fixed = await curl('8081-after.bin', [`http://${SERVER4}:${FIXED_PORT}/blob.bin`]);
    t.equal(fixed.code, 0, `after the fix, ${FIXED_PORT} works ${fixed.stderr}`);
    t.equal(fixed.sha, blobSha, 'download on the fixed port intact');

    await waitUntil('the stream to keep going after the reload', WAIT_MS, () => (progress().echoed >= echoedAtReload + 25 ? true : undefined));
    process.kill(stream.pid, 'SIGUSR1');
    await Promise.race([stream.exited, delay(10_000)]);
    const events = jsonLines(stream.stdout());
    t.same(events.filter((e) => e['event'] === 'error'), [], 'the stream saw no socket error');
    const done = events.find((e) => e['event'] === 'done');
    t.match(done, { event: 'done', intact: true, closedEarly: false }, 'the stream ended when told, intact');
    t.ok(Number(done?.['echoed']) > echoedAtReload, `echoes went on after the reload (${echoedAtReload} at the reload, ${String(done?.['echoed'])} at the end)`);
    t.equal(done?.['echoed'], done?.['sent'], 'every chunk sent came back');
    t.ok(Number(done?.['maxGapMs']) < 1_000, `longest pause between echoes ${String(done?.['maxGapMs'])} ms (a lost segment would cost a retransmission timeout)`);
  });

  t.test('a broken reload is rejected with file:line:column and changes nothing', async (t) => {
    const before = await stats();
    t.equal(before.policy.reloadFailed, 0, 'no rejected reload yet');
    const gen = before.policy.generation;
    const cases = [
      {
        what: 'a schema error (a typo in a key)',
        text: fixedText.replace('    dst_ports: 8081\n', '    dst_port: 8081\n'),
        expect: (lines: string[]) => {
          const line = lines.findIndex((l) => l === '    dst_port: 8081') + 1;
          return new RegExp(`^${policyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:5 rules\\[\\d+\\]\\.dst_port: unknown key "dst_port"`);
        },
      },
      {
        what: 'a YAML syntax error (an unclosed flow sequence)',
        text: fixedText.replace('[7000, 8080, 8081, 9000]', '[7000, 8080, 8081, 9000'),
        expect: () => new RegExp(`^${policyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ `),
      },
    ];
    for (const [i, c] of cases.entries()) {
      t.not(c.text, fixedText, `${c.what}: the fixture was changed`);
      writePolicy(c.text);
      const s = await waitUntil(`${c.what}: reloadFailed to grow`, WAIT_MS, async () => {
        const st = await stats();
        return st.policy.reloadFailed > before.policy.reloadFailed + i ? st : undefined;
      });
      t.equal(s.policy.reloadFailed, i + 1, `${c.what}: counted as a rejected reload`);
      t.equal(s.policy.generation, gen, `${c.what}: the policy generation did not change`);
      t.ok(s.workers.every((w) => w.policy_generation === gen), `${c.what}: every worker still runs generation ${gen}`);
      const re = c.expect(c.text.split('\n'));
      t.match(s.policy.lastErrors[0], re, `${c.what}: /stats shows the error at file:line:column`);
      const rejected = await waitUntil(`${c.what}: policy_reload_rejected in the log`, WAIT_MS, () => {
        const r = applianceLog().filter((e) => e['msg'] === 'policy_reload_rejected');
        return r.length > i ? r[r.length - 1] : undefined;
      });
      t.match(rejected, { level: 'error', why: 'file-change', keptGeneration: gen }, `${c.what}: logged as rejected`);
      t.match((rejected['errors'] as string[])[0], re, `${c.what}: the log names file:line:column`);
    }

    // Behaviour is that of the last good policy: the fixed port passes, SSH is still dropped, 2323 still rejected.
    const fixed = await curl('8081-after-broken.bin', [`http://${SERVER4}:${FIXED_PORT}/blob.bin`]);
    t.equal(fixed.code, 0, `${FIXED_PORT} still allowed ${fixed.stderr}`);
    t.equal(fixed.sha, blobSha, 'and its download is intact');
    const ssh = await connect(SERVER4, SSH_PORT, DROP_WAIT_MS);
    t.equal(ssh.outcome, 'timeout', `SSH still dropped: ${JSON.stringify(ssh)}`);
    const rej = await connect(SERVER4, REJECT_PORT, 5_000);
    t.equal(rej.outcome, 'error', `${REJECT_PORT} still rejected: ${JSON.stringify(rej)}`);
    t.equal((await stats()).policy.generation, gen, 'still the same generation');
  });

  t.test('the servers never accepted a blocked connection, every packet the appliance returned passed the emulator’s checks, and the appliance logged no error', async (t) => {
    t.equal(serverEvents({ event: 'accept', port: SSH_PORT }).length, 0, 'SSH listener: no connection');
    t.equal(serverEvents({ event: 'accept', port: REJECT_PORT }).length, 0, 'rejected port: no connection');
    t.same(
      serverEvents({ event: 'sni' }).map((e) => e['servername']),
      ['allowed.example'],
      'the only ClientHello that reached the TLS server named allowed.example',
    );
    const c = await L().counters();
    t.equal(c.emulator.returnsRejectedTotal, 0, `returns rejected: ${JSON.stringify(c.emulator.counters.returnsRejected)}`);
    const s = await stats();
    t.equal(s.internal_faults, 0, 'no internal fault in the appliance');
    const errors = applianceLog().filter((e) => e['level'] === 'error' && e['msg'] !== 'policy_reload_rejected');
    t.same(errors, [], 'no error in the appliance log other than the rejected reloads');
  });
}
