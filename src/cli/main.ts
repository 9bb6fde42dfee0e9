#!/usr/bin/env node
/**
 * gwlb-inspector command line: run | validate | explain | lab.
 */
// First: refuse an unsupported Node before any other module is evaluated (ES modules evaluate in import order).
import './require-node.js';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { SETTINGS_SCHEMA, SettingsError, envName, flagName, resolveSettings } from '../config/settings.js';
import { runAppliance } from './run.js';
import { settingDefault } from '../config/doc.js';
import { createLogger } from '../util/logger.js';

const USAGE = `gwlb-inspector — inline inspection appliance behind an AWS Gateway Load Balancer

Usage:
  gwlb-inspector run [options]            receive GENEVE from GWLB, inspect, return allowed traffic
  gwlb-inspector validate FILE...         check policy files; errors as file:line:column
  gwlb-inspector explain --policy FILE tcp 10.0.0.1:1234 10.0.0.2:443 [--sni NAME] [--host NAME] [--endpoint vpce-...]
                                          show which rule decides a flow and why
  gwlb-inspector lab up|down|status       a GWLB emulator with client and server namespaces on this machine
  gwlb-inspector --help | --version

Try it:  sudo gwlb-inspector run --policy policies/default.yaml
         then curl http://127.0.0.1:8080/healthz (health) and http://127.0.0.1:9090/stats (stats, loopback)

Run 'gwlb-inspector run --help' for every option of the appliance.`;

function runUsage(): string {
  const lines = ['Usage: gwlb-inspector run [options]', '', 'Every option can also be set by its environment variable (flags win).', ''];
  for (const [name, schema] of Object.entries(SETTINGS_SCHEMA.shape)) {
    lines.push(`  --${flagName(name)} VALUE   (env ${envName(name)}, default ${JSON.stringify(settingDefault(schema))})`);
    lines.push(`      ${schema.description ?? ''}`);
  }
  lines.push('', 'Signals: SIGHUP reloads the policy (so does saving the file); SIGTERM/SIGINT stop cleanly (exit 0).');
  return lines.join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : s + '\n');
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    out(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    out(version());
    return 0;
  }
  if (command === 'run') {
    const options: Record<string, { type: 'string' }> = {};
    for (const name of Object.keys(SETTINGS_SCHEMA.shape)) options[flagName(name)] = { type: 'string' };
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n\n${runUsage()}\n`);
      return 2;
    }
    if (parsed.values.help === true) {
      out(runUsage());
      return 0;
    }
    const flags: Record<string, string | undefined> = {};
    for (const name of Object.keys(SETTINGS_SCHEMA.shape)) {
      const v = (parsed.values as Record<string, unknown>)[flagName(name)];
      if (typeof v === 'string') flags[name] = v;
    }
    try {
      return await runAppliance(resolveSettings(flags, process.env));
    } catch (err) {
      if (err instanceof SettingsError) {
        process.stderr.write(`${err.message}\n`);
        createLogger('error').error('start_failed', { step: 'settings', reason: err.message, code: err.code });
        return 2;
      }
      throw err;
    }
  }
  if (command === 'validate') {
    const { runValidate } = await import('./validate.js');
    return runValidate(rest, out);
  }
  if (command === 'explain') {
    const { runExplain } = await import('./explain.js');
    return runExplain(rest, out);
  }
  if (command === 'lab') {
    const { runLab } = await import('./lab.js');
    return runLab(rest, out);
  }
  process.stderr.write(`unknown command: ${command}\n\n${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`gwlb-inspector: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
