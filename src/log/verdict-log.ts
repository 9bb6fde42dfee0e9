/**
 * Builds the verdict log router from the settings: stdout (unless --log-stdout false), the rotating file (with
 * --log-file), CloudWatch Logs (with --cloudwatch-log-group). The appliance id is the EC2 instance id when
 * CloudWatch is configured and instance metadata answers, else the hostname: metadata is asked only when
 * CloudWatch is on, so hosts outside EC2 do not wait for it. The CloudWatch modules (undici, the SigV4 signer) are
 * loaded only then too.
 */
import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import type { Settings } from '../config/settings.js';
import { LogRouter } from './router.js';
import type { LogSink } from './sinks/sink.js';
import { StdoutSink } from './sinks/stdout.js';
import { RotatingFileSink } from './sinks/file.js';

export type VerdictLogSettings = Pick<
  Settings,
  'logStdout' | 'logFile' | 'logFileMaxBytes' | 'logFileMaxFiles' | 'logQueueBytes' | 'logRatePerS' | 'logSampleEvery' | 'cloudwatchLogGroup' | 'cloudwatchLogStream'
>;

export interface VerdictLogDeps {
  env: NodeJS.ProcessEnv;
  warn: (msg: string, fields: Record<string, unknown>) => void;
  stdout?: Writable;
  /** Process start, epoch ms (default stream name). */
  startMs?: number;
}

export async function createVerdictLog(settings: VerdictLogSettings, deps: VerdictLogDeps): Promise<LogRouter> {
  const sinks: LogSink[] = [];
  if (settings.logStdout) sinks.push(new StdoutSink(deps.stdout ?? process.stdout));
  if (settings.logFile !== '') sinks.push(new RotatingFileSink({ path: settings.logFile, maxBytes: settings.logFileMaxBytes, maxFiles: settings.logFileMaxFiles }));
  let applianceId = hostname();
  let autoScalingGroup: string | null = null;
  if (settings.cloudwatchLogGroup !== '') {
    // Loaded only when configured: undici and the signer add to every start otherwise.
    const { CloudWatchLogsSink, defaultStreamName } = await import('./cloudwatch.js');
    const { CredentialProvider } = await import('./aws/credentials.js');
    const credentials = new CredentialProvider(deps.env);
    const imds = deps.env.AWS_EC2_METADATA_DISABLED?.toLowerCase() === 'true' ? null : credentials.imds;
    const instanceId = imds === null ? '' : await imds.instanceId().catch(() => '');
    if (/^i-[0-9a-f]{8,32}$/.test(instanceId)) applianceId = instanceId;
    // The EMF dimension: readable when the launch template allows instance tags in metadata (docker/cloudformation.yaml).
    if (applianceId === instanceId && imds !== null) {
      const asg = (await imds.get('/latest/meta-data/tags/instance/aws:autoscaling:groupName').catch(() => '')).trim();
      if (/^[\x20-\x7e]{1,255}$/.test(asg)) autoScalingGroup = asg;
    }
    const stream = settings.cloudwatchLogStream !== '' ? settings.cloudwatchLogStream : instanceId !== '' && applianceId === instanceId ? instanceId : await defaultStreamName(null, deps.startMs ?? Date.now() - process.uptime() * 1000);
    sinks.push(new CloudWatchLogsSink({ logGroup: settings.cloudwatchLogGroup, logStream: stream, env: deps.env, credentials, warn: deps.warn }));
  }
  const router = new LogRouter({
    sinks,
    queueBytes: settings.logQueueBytes,
    ratePerS: settings.logRatePerS,
    sampleEvery: settings.logSampleEvery,
    applianceId,
    onSinkError: (sink, err) => deps.warn('verdict_log_sink_error', { sink, message: (err as Error).message }),
  });
  router.autoScalingGroup = autoScalingGroup;
  return router;
}
