/**
 * A minimal CloudWatch Logs JSON client: one signed POST per operation over undici.
 *
 * Protocol: awsJson1_1. POST / with `Content-Type: application/x-amz-json-1.1` and
 * `X-Amz-Target: Logs_20140328.<Operation>`, a JSON body, signed with SigV4 for service `logs` by
 * @smithy/signature-v4 (the AWS SDK's own signer). Errors come back as JSON with `__type`
 * (e.g. `com.amazonaws.logs#ThrottlingException` or just `ThrottlingException`) and `message`.
 *
 * Region from AWS_REGION (then AWS_DEFAULT_REGION); endpoint from AWS_ENDPOINT_URL_CLOUDWATCH_LOGS, then
 * AWS_ENDPOINT_URL, then https://logs.REGION.amazonaws.com — the AWS SDKs' rules, which is also how tests point it
 * at a local moto_server.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { Agent, request } from 'undici';
import type { CredentialProvider } from './credentials.js';

/** Connect timeout of a CloudWatch Logs call (5 s). */
export const LOGS_CONNECT_TIMEOUT_MS = 5000;
/** Headers and body timeout of a CloudWatch Logs call (15 s). */
export const LOGS_REQUEST_TIMEOUT_MS = 15_000;
/** Largest response body read (CloudWatch answers are small; GetLogEvents pages can reach ~1 MiB). */
export const LOGS_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export class AwsConfigError extends Error {
  readonly code = 'GWI_ERR_AWS_CONFIG';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AwsConfigError';
  }
}

export function resolveRegion(env: NodeJS.ProcessEnv): string {
  const region = env.AWS_REGION !== undefined && env.AWS_REGION !== '' ? env.AWS_REGION : env.AWS_DEFAULT_REGION;
  if (region === undefined || region === '') throw new AwsConfigError('CloudWatch Logs needs a region: set AWS_REGION');
  if (!/^[a-z0-9-]{1,32}$/.test(region)) throw new AwsConfigError(`AWS_REGION is not a region name: ${region}`);
  return region;
}

export function resolveLogsEndpoint(env: NodeJS.ProcessEnv, region: string): URL {
  const override = env.AWS_ENDPOINT_URL_CLOUDWATCH_LOGS || env.AWS_ENDPOINT_URL;
  const text = override !== undefined && override !== '' ? override : `https://logs.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
  try {
    const url = new URL(text);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
    return url;
  } catch (err) {
    throw new AwsConfigError(`CloudWatch Logs endpoint is not an http(s) URL: ${text}`, { cause: err });
  }
}

export interface LogsResponse {
  /** HTTP status; 0 when no response arrived (connection refused, reset, timeout). */
  status: number;
  /** Parsed JSON body (an empty object when there was none). */
  body: Record<string, unknown>;
  /** Error type without namespace (ThrottlingException), or '' on success; 'NetworkError' when status is 0. */
  errorType: string;
  message: string;
}

export class CloudWatchLogsClient {
  readonly region: string;
  readonly endpoint: URL;
  private readonly signer: SignatureV4;
  private readonly agent: Agent;

  constructor(env: NodeJS.ProcessEnv, credentials: CredentialProvider) {
    this.region = resolveRegion(env);
    this.endpoint = resolveLogsEndpoint(env, this.region);
    this.signer = new SignatureV4({ service: 'logs', region: this.region, credentials: () => credentials.get(), sha256: Sha256, applyChecksum: true });
    this.agent = new Agent({ connect: { timeout: LOGS_CONNECT_TIMEOUT_MS }, headersTimeout: LOGS_REQUEST_TIMEOUT_MS, bodyTimeout: LOGS_REQUEST_TIMEOUT_MS, connections: 4 });
  }

  /** One operation. Never throws for HTTP or network failures (see LogsResponse); throws CredentialsError. */
  async call(operation: string, input: unknown): Promise<LogsResponse> {
    const body = JSON.stringify(input);
    const url = this.endpoint;
    const signed = await this.signer.sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port !== '' ? { port: Number(url.port) } : {}),
      path: url.pathname === '' ? '/' : url.pathname,
      query: {},
      headers: { host: url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `Logs_20140328.${operation}` },
      body,
    });
    let status: number;
    let text: string;
    try {
      const res = await request(url, { method: 'POST', headers: signed.headers, body, dispatcher: this.agent });
      status = res.statusCode;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > LOGS_MAX_RESPONSE_BYTES) {
          res.body.destroy();
          return { status: 0, body: {}, errorType: 'NetworkError', message: `response larger than ${LOGS_MAX_RESPONSE_BYTES} bytes` };
        }
        chunks.push(chunk as Buffer);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      return { status: 0, body: {}, errorType: 'NetworkError', message: (err as Error).message };
    }
    let parsed: Record<string, unknown> = {};
    if (text !== '') {
      try {
        const v = JSON.parse(text) as unknown;
        if (typeof v === 'object' && v !== null) parsed = v as Record<string, unknown>;
      } catch {
        parsed = { message: text.slice(0, 200) };
      }
    }
    if (status >= 200 && status < 300) return { status, body: parsed, errorType: '', message: '' };
    const type = typeof parsed.__type === 'string' ? parsed.__type : `HTTP${status}`;
    const message = typeof parsed.message === 'string' ? parsed.message : typeof parsed.Message === 'string' ? parsed.Message : '';
    return { status, body: parsed, errorType: type.slice(type.lastIndexOf('#') + 1), message };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
