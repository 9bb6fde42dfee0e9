/**
 * The running appliance writes its verdict log through the router: stdout, the rotating file and CloudWatch Logs
 * (a real moto_server) at once, each line a schema-valid event. A policy reload refused and one applied show up
 * as policy_reload events, the accepted one with the new policy version.
 */
import t from 'tap';
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAppliance, randomPort, REPO } from '../helpers/appliance.js';
import { startMoto } from '../helpers/moto.js';
import { waitFor } from '../helpers/wait.js';
import { CloudWatchLogsClient } from '../../src/log/aws/logs-client.js';
import { CredentialProvider } from '../../src/log/aws/credentials.js';
import { LogEventSchema } from '../../src/log/schema.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

t.test('stdout, file and CloudWatch carry the same schema-valid events, policy reloads included', async (t) => {
  const dir = t.testdir({});
  const policy = join(dir, 'policy.yaml');
  copyFileSync(join(REPO, 'policies/default.yaml'), policy);
  const logFile = join(dir, 'verdicts.log');
  const env = { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'AKIDAPPLIANCE', AWS_SECRET_ACCESS_KEY: 's', AWS_EC2_METADATA_DISABLED: 'true', AWS_ENDPOINT_URL: moto.url };
  const app = await startAppliance(
    ['--listen', '127.0.0.1', '--port', String(randomPort()), '--admin-listen', '127.0.0.1:0', '--workers', '1', '--return-mode', 'udp', '--policy', policy, '--log-file', logFile, '--cloudwatch-log-group', '/gwlb/appliance-test', '--cloudwatch-log-stream', 'run-1'],
    env,
    60_000,
  );
  t.teardown(() => app.stop());
  const reloads = (): Record<string, unknown>[] => app.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.kind === 'policy_reload');
  await waitFor(() => reloads().length === 1, 15_000, 'the start policy_reload event on stdout');
  writeFileSync(policy, 'version: 1\nnot_a_key: true\n');
  app.proc.kill('SIGHUP');
  await waitFor(() => reloads().length === 2, 15_000, 'the refused reload');
  copyFileSync(join(REPO, 'policies/default.yaml'), policy);
  app.proc.kill('SIGHUP');
  await waitFor(() => reloads().length >= 3, 15_000, 'the applied reload');
  t.equal(await app.stop(), 0);
  const events = reloads();
  t.match(events[0], { trigger: 'start', ok: true, policyVersion: '1' });
  t.match(events[1], { trigger: 'sighup', ok: false, policyVersion: '1' });
  t.ok((events[1]?.errors as string[]).some((e) => e.includes('not_a_key')), 'the refusal lists the error');
  t.match(events.at(-1), { ok: true });
  t.not(events.at(-1)?.policyVersion, '1', 'the new policy version is stamped');
  for (const e of events) t.ok(LogEventSchema.safeParse(e).success, `${String(e.trigger)} event is schema-valid`);
  const file = readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '');
  t.same(file, app.stdout.filter((l) => l.startsWith('{"schemaVersion"')), 'the file has the same lines as stdout');
  const client = new CloudWatchLogsClient(env, new CredentialProvider(env));
  t.teardown(() => client.close());
  const res = await client.call('GetLogEvents', { logGroupName: '/gwlb/appliance-test', logStreamName: 'run-1', startFromHead: true });
  t.same((res.body.events as { message: string }[]).map((e) => e.message), file, 'CloudWatch got them all before exit');
});
