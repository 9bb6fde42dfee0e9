/**
 * The credential chain against local HTTP servers that speak the EC2 instance metadata (IMDSv2) and ECS container
 * credentials protocols, and end to end: a CloudWatch call signed with credentials from IMDS, seen by a proxy.
 */
import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CredentialProvider, CredentialsError, CREDENTIALS_REFRESH_BEFORE_MS, ecsCredentialsUrl } from '../../src/log/aws/credentials.js';
import { defaultStreamName } from '../../src/log/cloudwatch.js';

interface Served {
  url: string;
  requests: { method: string; path: string; headers: IncomingMessage['headers'] }[];
  close: () => Promise<void>;
}

async function serve(t: { teardown: (fn: () => unknown) => void }, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Served> {
  const requests: Served['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const close = async (): Promise<void> => {
    server.closeAllConnections();
    server.close();
  };
  t.teardown(close);
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests, close };
}

/** IMDSv2: a token from PUT /latest/api/token (TTL header required), every GET must present it. */
function imds(opts: { role: string; expiresInMs: () => number; failCreds?: () => boolean }) {
  let tokens = 0;
  let current = '';
  let keys = 0;
  const state = {
    revoke: () => (current = ''),
    handler(req: IncomingMessage, res: ServerResponse): void {
      if (req.method === 'PUT' && req.url === '/latest/api/token') {
        if (req.headers['x-aws-ec2-metadata-token-ttl-seconds'] === undefined) return void res.writeHead(400).end();
        current = `token-${++tokens}`;
        return void res.writeHead(200, { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' }).end(current);
      }
      if (req.method !== 'GET') return void res.writeHead(405).end();
      if (current === '' || req.headers['x-aws-ec2-metadata-token'] !== current) return void res.writeHead(401).end();
      if (req.url === '/latest/meta-data/instance-id') return void res.writeHead(200).end('i-0abc1234def567890');
      if (req.url === '/latest/meta-data/iam/security-credentials/') return void res.writeHead(200).end(opts.role);
      if (req.url === `/latest/meta-data/iam/security-credentials/${opts.role}`) {
        if (opts.failCreds?.() === true) return void res.writeHead(500).end();
        keys++;
        const doc = { Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: `ASIAIMDS${keys}`, SecretAccessKey: `secret${keys}`, Token: `session${keys}`, Expiration: new Date(opts.expiresInMs()).toISOString(), LastUpdated: new Date().toISOString() };
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end(JSON.stringify(doc));
      }
      res.writeHead(404).end();
    },
  };
  return state;
}

t.test('IMDSv2: token first, then role and credentials with the token; never a tokenless (IMDSv1) request', async (t) => {
  const server = imds({ role: 'appliance-role', expiresInMs: () => Date.now() + 6 * 3600_000 });
  const s = await serve(t, (q, r) => server.handler(q, r));
  const p = new CredentialProvider({ AWS_EC2_METADATA_SERVICE_ENDPOINT: s.url });
  const c = await p.get();
  t.match(c, { accessKeyId: 'ASIAIMDS1', secretAccessKey: 'secret1', sessionToken: 'session1' });
  t.equal(p.source, 'imds');
  t.same(s.requests.map((r) => `${r.method} ${r.path}`), ['PUT /latest/api/token', 'GET /latest/meta-data/iam/security-credentials/', 'GET /latest/meta-data/iam/security-credentials/appliance-role']);
  t.ok(s.requests.filter((r) => r.method === 'GET').every((r) => r.headers['x-aws-ec2-metadata-token'] === 'token-1'));
  t.equal((await p.get()).accessKeyId, 'ASIAIMDS1', 'cached while far from expiry');
  t.equal(s.requests.length, 3);
});

t.test('credentials are refreshed before they expire; a revoked IMDS token is renewed', async (t) => {
  let now = Date.now();
  const expiry = now + 60 * 60_000;
  const server = imds({ role: 'r', expiresInMs: () => expiry });
  const s = await serve(t, (q, r) => server.handler(q, r));
  const p = new CredentialProvider({ AWS_EC2_METADATA_SERVICE_ENDPOINT: s.url }, () => now);
  t.equal((await p.get()).accessKeyId, 'ASIAIMDS1');
  now = expiry - CREDENTIALS_REFRESH_BEFORE_MS - 1000;
  t.equal((await p.get()).accessKeyId, 'ASIAIMDS1', 'still more than the refresh margin left');
  now = expiry - CREDENTIALS_REFRESH_BEFORE_MS + 1000;
  server.revoke();
  t.equal((await p.get()).accessKeyId, 'ASIAIMDS2', 'refreshed inside the margin');
  t.equal(s.requests.filter((r) => r.method === 'PUT').length, 2, 'the 401 made it fetch a new token');
  t.equal(p.refreshes, 2);
});

t.test('a failed refresh keeps the old credentials while they are valid, then fails', async (t) => {
  let now = Date.now();
  const expiry = now + 10 * 60_000;
  let fail = false;
  const server = imds({ role: 'r', expiresInMs: () => expiry, failCreds: () => fail });
  const s = await serve(t, (q, r) => server.handler(q, r));
  const p = new CredentialProvider({ AWS_EC2_METADATA_SERVICE_ENDPOINT: s.url }, () => now);
  await p.get();
  fail = true;
  now = expiry - 60_000;
  t.equal((await p.get()).accessKeyId, 'ASIAIMDS1', 'old ones, still valid for a minute');
  t.equal(p.refreshFailures, 1);
  now = expiry + 1;
  await t.rejects(p.get(), CredentialsError);
  await s.close();
  now = expiry + 2;
  await t.rejects(p.get(), { code: 'GWI_ERR_AWS_CREDENTIALS' }, 'an endpoint that is gone is a CredentialsError too');
});

t.test('ECS: the full URI with the token from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', async (t) => {
  const dir = t.testdir({});
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'Bearer ecs-secret-token\n');
  const s = await serve(t, (req, res) => {
    if (req.url !== '/v2/credentials/abc' || req.headers.authorization !== 'Bearer ecs-secret-token') return void res.writeHead(401).end();
    res.writeHead(200).end(JSON.stringify({ AccessKeyId: 'ASIAECS', SecretAccessKey: 'ecs-secret', Token: 'ecs-session', Expiration: new Date(Date.now() + 3600_000).toISOString(), RoleArn: 'arn:aws:iam::123456789012:role/x' }));
  });
  const env = { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${s.url}/v2/credentials/abc`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile, AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9' };
  const p = new CredentialProvider(env);
  t.match(await p.get(), { accessKeyId: 'ASIAECS', secretAccessKey: 'ecs-secret', sessionToken: 'ecs-session' });
  t.equal(p.source, 'ecs');
  const wrong = new CredentialProvider({ ...env, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '', AWS_CONTAINER_AUTHORIZATION_TOKEN: 'Bearer wrong' });
  await t.rejects(wrong.get(), /HTTP 401/);
});

t.test('ECS endpoint rules: relative URI on 169.254.170.2; a full URI over http only to loopback or the ECS agent', async (t) => {
  t.equal(ecsCredentialsUrl({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/x' }), 'http://169.254.170.2/v2/credentials/x');
  t.equal(ecsCredentialsUrl({}), null);
  t.throws(() => ecsCredentialsUrl({ AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://198.51.100.1/creds' }), CredentialsError);
  t.equal(ecsCredentialsUrl({ AWS_CONTAINER_CREDENTIALS_FULL_URI: 'https://creds.example/x' }), 'https://creds.example/x');
});

t.test('environment credentials come first: no metadata request is made', async (t) => {
  const s = await serve(t, (_req, res) => res.writeHead(500).end());
  const p = new CredentialProvider({ AWS_ACCESS_KEY_ID: 'AKIAENV', AWS_SECRET_ACCESS_KEY: 's', AWS_SESSION_TOKEN: 'tok', AWS_CONTAINER_CREDENTIALS_FULL_URI: `${s.url}/c`, AWS_EC2_METADATA_SERVICE_ENDPOINT: s.url });
  t.same(await p.get(), { accessKeyId: 'AKIAENV', secretAccessKey: 's', sessionToken: 'tok' });
  t.equal(p.source, 'env');
  t.equal(s.requests.length, 0);
  await t.rejects(new CredentialProvider({ AWS_EC2_METADATA_DISABLED: 'true' }).get(), /no AWS credentials/);
});

t.test('the default stream is the instance id from IMDS, else hostname plus start time without colons', async (t) => {
  const server = imds({ role: 'r', expiresInMs: () => Date.now() + 3600_000 });
  const s = await serve(t, (q, r) => server.handler(q, r));
  const p = new CredentialProvider({ AWS_EC2_METADATA_SERVICE_ENDPOINT: s.url });
  t.equal(await defaultStreamName(p.imds, 0), 'i-0abc1234def567890');
  await s.close();
  const name = await defaultStreamName(new CredentialProvider({ AWS_EC2_METADATA_SERVICE_ENDPOINT: s.url }).imds, Date.UTC(2026, 11, 2, 13, 4, 5, 6));
  t.match(name, /-2026-12-02T13-04-05-006Z$/);
  t.notMatch(name, /[:*]/);
});
