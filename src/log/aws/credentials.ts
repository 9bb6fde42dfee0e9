/**
 * AWS credentials the way the AWS SDKs find them, so operators configure nothing new:
 *
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (static);
 *   2. the ECS container credentials endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2) or
 *      AWS_CONTAINER_CREDENTIALS_FULL_URI, with the token of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN as the Authorization header;
 *   3. EC2 instance metadata with IMDSv2 session tokens (PUT /latest/api/token, then
 *      GET /latest/meta-data/iam/security-credentials/ and …/ROLE), at AWS_EC2_METADATA_SERVICE_ENDPOINT
 *      (default http://169.254.169.254), unless AWS_EC2_METADATA_DISABLED=true.
 *
 * Temporary credentials are refreshed CREDENTIALS_REFRESH_BEFORE_MS before they expire; when a refresh fails while
 * the old ones are still valid, the old ones are used and the failure counted. Faults are CredentialsError.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When temporary credentials stop working; absent for static ones. */
  expiration?: Date;
}

export type CredentialSource = 'env' | 'ecs' | 'imds';

/** Refresh this long before expiry (5 min, as the SDKs do). */
export const CREDENTIALS_REFRESH_BEFORE_MS = 5 * 60 * 1000;
/** Connect, headers and body timeout of one metadata request (1 s, the SDKs' default). */
export const METADATA_TIMEOUT_MS = 1000;
/** IMDSv2 session token lifetime asked for (6 h, the maximum). */
export const IMDS_TOKEN_TTL_S = 21_600;
export const IMDS_DEFAULT_ENDPOINT = 'http://169.254.169.254';
export const ECS_RELATIVE_HOST = 'http://169.254.170.2';
/** Largest metadata response read (credentials documents are ~1.5 KiB). */
const MAX_METADATA_BYTES = 64 * 1024;

export class CredentialsError extends Error {
  readonly code = 'GWI_ERR_AWS_CREDENTIALS';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CredentialsError';
  }
}

const metadataAgent = new Agent({ connect: { timeout: METADATA_TIMEOUT_MS }, headersTimeout: METADATA_TIMEOUT_MS, bodyTimeout: METADATA_TIMEOUT_MS, keepAliveTimeout: 1000 });

async function httpText(url: string, method: 'GET' | 'PUT', headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await request(url, { method, headers, dispatcher: metadataAgent });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_METADATA_BYTES) {
      res.body.destroy();
      throw new CredentialsError(`${url}: response larger than ${MAX_METADATA_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return { status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') };
}

export function envCredentials(env: NodeJS.ProcessEnv): AwsCredentials | null {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (accessKeyId === undefined || accessKeyId === '' || secretAccessKey === undefined || secretAccessKey === '') return null;
  const token = env.AWS_SESSION_TOKEN;
  return token !== undefined && token !== '' ? { accessKeyId, secretAccessKey, sessionToken: token } : { accessKeyId, secretAccessKey };
}

/** Hosts the SDKs accept for AWS_CONTAINER_CREDENTIALS_FULL_URI over plain http: loopback and the ECS/EKS agents. */
function fullUriAllowed(url: URL): boolean {
  if (url.protocol === 'https:') return true;
  if (url.protocol !== 'http:') return false;
  const h = url.hostname;
  return h === 'localhost' || h.startsWith('127.') || h === '[::1]' || h === '169.254.170.2' || h === '169.254.170.23' || h === '[fd00:ec2::23]';
}

/** The ECS credentials URL from the environment, or null when neither variable is set. */
export function ecsCredentialsUrl(env: NodeJS.ProcessEnv): string | null {
  const rel = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
  if (rel !== undefined && rel !== '') return ECS_RELATIVE_HOST + (rel.startsWith('/') ? rel : `/${rel}`);
  const full = env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  if (full === undefined || full === '') return null;
  let url: URL;
  try {
    url = new URL(full);
  } catch (err) {
    throw new CredentialsError(`AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL: ${full}`, { cause: err });
  }
  if (!fullUriAllowed(url)) throw new CredentialsError(`AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a loopback/ECS agent address: ${full}`);
  return url.toString();
}

interface CredentialsDocument {
  AccessKeyId?: unknown;
  SecretAccessKey?: unknown;
  Token?: unknown;
  Expiration?: unknown;
  Code?: unknown;
}

function parseCredentialsDocument(text: string, from: string): AwsCredentials {
  let doc: CredentialsDocument;
  try {
    doc = JSON.parse(text) as CredentialsDocument;
  } catch (err) {
    throw new CredentialsError(`${from}: credentials are not JSON`, { cause: err });
  }
  if (doc.Code !== undefined && doc.Code !== 'Success') throw new CredentialsError(`${from}: Code ${String(doc.Code)}`);
  if (typeof doc.AccessKeyId !== 'string' || typeof doc.SecretAccessKey !== 'string') throw new CredentialsError(`${from}: AccessKeyId or SecretAccessKey missing`);
  const creds: AwsCredentials = { accessKeyId: doc.AccessKeyId, secretAccessKey: doc.SecretAccessKey };
  if (typeof doc.Token === 'string') creds.sessionToken = doc.Token;
  if (typeof doc.Expiration === 'string') {
    const exp = new Date(doc.Expiration);
    if (Number.isNaN(exp.getTime())) throw new CredentialsError(`${from}: Expiration is not a date: ${doc.Expiration}`);
    creds.expiration = exp;
  }
  return creds;
}

export async function ecsCredentials(env: NodeJS.ProcessEnv): Promise<AwsCredentials> {
  const url = ecsCredentialsUrl(env);
  if (url === null) throw new CredentialsError('no ECS container credentials endpoint configured');
  const headers: Record<string, string> = {};
  const tokenFile = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  if (tokenFile !== undefined && tokenFile !== '') headers.authorization = (await readFile(tokenFile, 'utf8')).trim();
  else if (env.AWS_CONTAINER_AUTHORIZATION_TOKEN !== undefined && env.AWS_CONTAINER_AUTHORIZATION_TOKEN !== '') headers.authorization = env.AWS_CONTAINER_AUTHORIZATION_TOKEN;
  const res = await httpText(url, 'GET', headers).catch((err: unknown) => {
    throw new CredentialsError(`ECS credentials endpoint ${url}: ${(err as Error).message}`, { cause: err });
  });
  if (res.status !== 200) throw new CredentialsError(`ECS credentials endpoint ${url}: HTTP ${res.status}`);
  return parseCredentialsDocument(res.text, 'ECS credentials endpoint');
}

/** An IMDSv2 client: one session token, renewed before it expires and after a 401. */
export class ImdsClient {
  readonly endpoint: string;
  private token: string | null = null;
  private tokenExpiresMs = 0;

  constructor(env: NodeJS.ProcessEnv, private readonly now: () => number = Date.now) {
    const ep = env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    this.endpoint = (ep !== undefined && ep !== '' ? ep : IMDS_DEFAULT_ENDPOINT).replace(/\/+$/, '');
  }

  /** GET a metadata path (e.g. /latest/meta-data/instance-id) with a session token. */
  async get(path: string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.sessionToken();
      const res = await httpText(this.endpoint + path, 'GET', { 'x-aws-ec2-metadata-token': token }).catch((err: unknown) => {
        throw new CredentialsError(`IMDS ${path}: ${(err as Error).message}`, { cause: err });
      });
      if (res.status === 401 && attempt === 0) {
        this.token = null;
        continue;
      }
      if (res.status !== 200) throw new CredentialsError(`IMDS ${path}: HTTP ${res.status}`);
      return res.text;
    }
  }

  private async sessionToken(): Promise<string> {
    if (this.token !== null && this.now() < this.tokenExpiresMs - 60_000) return this.token;
    const res = await httpText(`${this.endpoint}/latest/api/token`, 'PUT', { 'x-aws-ec2-metadata-token-ttl-seconds': String(IMDS_TOKEN_TTL_S) }).catch((err: unknown) => {
      throw new CredentialsError(`IMDS token: ${(err as Error).message}`, { cause: err });
    });
    if (res.status !== 200 || res.text === '') throw new CredentialsError(`IMDS token: HTTP ${res.status}`);
    this.token = res.text.trim();
    this.tokenExpiresMs = this.now() + IMDS_TOKEN_TTL_S * 1000;
    return this.token;
  }

  async credentials(): Promise<AwsCredentials> {
    const base = '/latest/meta-data/iam/security-credentials/';
    const role = (await this.get(base)).split('\n')[0]?.trim() ?? '';
    if (role === '') throw new CredentialsError('IMDS: the instance has no IAM role');
    return parseCredentialsDocument(await this.get(base + encodeURIComponent(role)), `IMDS role ${role}`);
  }

  async instanceId(): Promise<string> {
    return (await this.get('/latest/meta-data/instance-id')).trim();
  }
}

/** The credential chain with caching and refresh before expiry. */
export class CredentialProvider {
  private current: AwsCredentials | null = null;
  private pending: Promise<AwsCredentials> | null = null;
  source: CredentialSource | null = null;
  refreshes = 0;
  refreshFailures = 0;
  readonly imds: ImdsClient;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly now: () => number = Date.now,
  ) {
    this.imds = new ImdsClient(env, now);
  }

  /** Credentials valid for at least CREDENTIALS_REFRESH_BEFORE_MS, or the still-valid old ones if a refresh fails. */
  async get(): Promise<AwsCredentials> {
    const c = this.current;
    if (c !== null && (c.expiration === undefined || c.expiration.getTime() - this.now() > CREDENTIALS_REFRESH_BEFORE_MS)) return c;
    this.pending ??= this.resolve().finally(() => (this.pending = null));
    try {
      return await this.pending;
    } catch (err) {
      this.refreshFailures++;
      if (c?.expiration !== undefined && c.expiration.getTime() > this.now()) return c;
      throw err;
    }
  }

  private async resolve(): Promise<AwsCredentials> {
    let creds: AwsCredentials;
    let source: CredentialSource;
    const fromEnv = envCredentials(this.env);
    if (fromEnv !== null) {
      creds = fromEnv;
      source = 'env';
    } else if (ecsCredentialsUrl(this.env) !== null) {
      creds = await ecsCredentials(this.env);
      source = 'ecs';
    } else if (this.env.AWS_EC2_METADATA_DISABLED?.toLowerCase() !== 'true') {
      creds = await this.imds.credentials();
      source = 'imds';
    } else {
      throw new CredentialsError('no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, run with an ECS task role, or enable instance metadata');
    }
    this.current = creds;
    this.source = source;
    this.refreshes++;
    return creds;
  }
}
