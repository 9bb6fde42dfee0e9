/**
 * `gwlb-inspector run`: load the policy, start the data plane and the admin port, reload the policy on SIGHUP
 * or when the file (or a file it includes) changes, stop cleanly on SIGTERM/SIGINT (stop receiving, flush,
 * exit 0). An invalid policy at start is fatal (exit 2, every error as file:line:column); an invalid policy on
 * reload is rejected, logged and counted, and the running policy stays in force.
 */
import { Supervisor } from '../dataplane/supervisor.js';
import { SelfTest } from '../admin/self-test.js';
import { startAdminServer } from '../admin/server.js';
import { createLogger } from '../util/logger.js';
import { PolicyManager, type ReloadResult } from '../policy/reload.js';
import { formatIssue, sortIssues } from '../policy/errors.js';
import type { Settings } from '../config/settings.js';
import { createVerdictLog } from '../log/verdict-log.js';
import type { LogRouter } from '../log/router.js';
import { firewallVerdictEvent } from '../log/firewall-adapter.js';

export async function runAppliance(settings: Settings): Promise<number> {
  const log = createLogger(settings.logLevel);
  const policy = new PolicyManager(settings.policy, { reevaluate: settings.reevaluateOnReload });
  const first = policy.load();
  if (!first.ok) {
    for (const issue of sortIssues(first.issues)) process.stderr.write(formatIssue(issue) + '\n');
    log.error('policy_invalid', { file: settings.policy, errors: first.issues.length });
    return 2;
  }
  // Verdict log: stdout, file and/or CloudWatch Logs through the router (docs/logging.md); never blocks workers.
  let verdictLog: LogRouter;
  try {
    verdictLog = await createVerdictLog(settings, { env: process.env, warn: (m, f) => log.warn(m, f) });
  } catch (err) {
    const e = err as Error & { code?: string };
    log.error('verdict_log_config', { message: e.message, code: e.code });
    return 2;
  }
  verdictLog.policyVersion = String(first.generation);
  verdictLog.emit({ kind: 'policy_reload', trigger: 'start', ok: true, file: settings.policy, errors: [] });
  const supervisor = new Supervisor(settings, { generation: first.generation, document: first.loaded }, log);
  let unreadableVerdicts = 0;
  supervisor.onVerdictLog = (raw) => {
    const v = firewallVerdictEvent(raw);
    if (v === null) unreadableVerdicts++;
    else verdictLog.emit(v.event, Date.now(), v.suppressed);
  };
  try {
    await supervisor.start();
  } catch (err) {
    const e = err as Error & { code?: string };
    log.error('start_failed', { message: e.message, code: e.code, hint: e.code === 'EPERM' ? 'the raw return path needs CAP_NET_RAW (or --return-mode udp)' : undefined });
    await supervisor.stop().catch(() => undefined);
    await verdictLog.close(settings.logFlushMs);
    return 1;
  }
  const selfTest = new SelfTest(settings.listen, settings.port, settings.workers, supervisor.probeNonce);
  selfTest.start(settings.healthIntervalMs);
  const [adminHost, adminPortText] = settings.adminListen.split(':') as [string, string];
  const admin = await startAdminServer(adminHost, Number(adminPortText), {
    supervisor,
    selfTest,
    healthMaxAgeMs: settings.healthMaxAgeMs,
    policyLoaded: () => policy.current !== null,
    extraStats: () => ({
      policy: { file: settings.policy, generation: policy.generation, ...policy.counters, lastErrors: policy.lastErrors.map(formatIssue) },
      verdictLog: { ...verdictLog.stats(), unreadableVerdicts },
    }),
  });
  const adminAddress = admin.address();
  log.info('started', {
    listen: `${settings.listen}:${settings.port}`,
    admin: typeof adminAddress === 'object' && adminAddress !== null ? `${adminAddress.address}:${adminAddress.port}` : settings.adminListen,
    workers: settings.workers,
    returnMode: settings.returnMode,
    policy: settings.policy,
    policyGeneration: first.generation,
  });

  const applied = (why: 'SIGHUP' | 'file-change', r: ReloadResult): void => {
    const trigger = why === 'SIGHUP' ? 'sighup' : 'file_change';
    if (!r.ok) {
      verdictLog.emit({ kind: 'policy_reload', trigger, ok: false, file: settings.policy, errors: sortIssues(r.issues).slice(0, 50).map((i) => formatIssue(i).slice(0, 512)) });
      log.error('policy_reload_rejected', { why, file: settings.policy, errors: sortIssues(r.issues).map(formatIssue), keptGeneration: r.generation });
      return;
    }
    supervisor.applyPolicy({ generation: r.generation, document: r.loaded, reevaluate: r.reevaluate });
    verdictLog.policyVersion = String(r.generation);
    verdictLog.emit({ kind: 'policy_reload', trigger, ok: true, file: settings.policy, errors: [] });
    log.info('policy_reloaded', { why, file: settings.policy, generation: r.generation });
  };
  const unwatch = policy.watch((r) => applied('file-change', r));
  const onHup = (): void => applied('SIGHUP', policy.load());
  process.on('SIGHUP', onHup);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      unwatch();
      process.off('SIGHUP', onHup);
      selfTest.stop();
      admin.close();
      admin.closeAllConnections();
      void supervisor
        .stop()
        .then(() => verdictLog.close(settings.logFlushMs))
        .then(() => {
          log.info('stopped', { verdictLog: verdictLog.stats() });
          resolve(0);
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
