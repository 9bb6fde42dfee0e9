/**
 * `gwlb-inspector validate FILE...`: load and compile each policy as the appliance would, print every problem as
 * `file:line:column path: message`, and exit 0 when all files are valid, 1 when any is not (2: usage error).
 * Warnings (valid but suspicious, e.g. unreachable rules) are printed and do not fail validation.
 *
 * Rule-set files (rules/*.yaml: what policies include) have their own schema (RuleSetSchema). A file is read as a
 * rule set when its schema hint says so (a `$schema` key, or the editor's `# yaml-language-server: $schema=` line,
 * naming rules.schema.json; policy.schema.json makes it a policy), or, without a hint, when its top level is
 * rules-shaped (no default_action, only rule-set keys: version, description, include, sets, rules) and it lies in a
 * directory named `rules`. Anything else is a policy: the shape alone cannot tell a rule set from a policy that
 * forgot default_action, and the second is the mistake worth reporting; such a file gets a hint to use
 * `--kind rules`, which, like `--kind policy`, overrides the guess. A rule set is checked the way a policy would use
 * it: included for its sets and its rules by a policy that passes everything else, so its own includes, set
 * references and rules are all validated, and problems are reported at the rule-set file's lines.
 */
import { basename, dirname, join, resolve, sep } from 'node:path';
import { parseDocument } from 'yaml';
import { compilePolicy } from '../policy/compile.js';
import { formatIssue, hasErrors, sortIssues, type PolicyIssue } from '../policy/errors.js';
import { fsReader, loadPolicy, type ReadFile } from '../policy/load.js';

/** The top-level keys of a rule-set file (RuleSetSchema in src/policy/schema.ts). */
const RULE_SET_KEYS: ReadonlySet<string> = new Set(['$schema', 'version', 'description', 'include', 'sets', 'rules']);

export type FileKind = 'policy' | 'rules';

/** Whether a document's top level is a map without default_action whose keys all belong to a rule set. */
function rulesShaped(text: string): boolean {
  let value: unknown;
  try {
    value = parseDocument(text, { prettyErrors: false }).toJS({ maxAliasCount: 1000 });
  } catch {
    return false;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => RULE_SET_KEYS.has(k));
}

/** Policy or rule set (see the top of this file): the schema hint, else the shape plus a `rules` directory. */
export function guessKind(text: string, path: string): FileKind {
  const hint = /^\s*(?:#\s*yaml-language-server:\s*)?\$schema\s*[:=]\s*["']?(\S*?)["']?\s*$/m.exec(text)?.[1] ?? '';
  if (hint.endsWith('rules.schema.json')) return 'rules';
  if (hint.endsWith('policy.schema.json')) return 'policy';
  return rulesShaped(text) && resolve(path).split(sep).slice(0, -1).includes('rules') ? 'rules' : 'policy';
}

/**
 * A policy, beside the rule-set file so relative includes resolve the same, that includes it for its sets and its
 * rules; it exists only in this reader.
 */
function ruleSetHarness(file: string): { path: string; read: ReadFile } {
  const path = join(dirname(file), `.gwlb-inspector-validate-${process.pid}.yaml`);
  const name = JSON.stringify(basename(file));
  const text = `version: 1\ndefault_action: pass\ninclude: [${name}]\nrules:\n  - include: ${name}\n`;
  const fs = fsReader();
  return { path, read: (p) => (p === path ? { text } : fs(p)) };
}

const USAGE = `Usage: gwlb-inspector validate [--json] [--policy-root DIR] FILE...

Checks policy files (and the rule-set files they include) and prints every problem as
  file:line:column path: message
Exit status: 0 all valid, 1 some file invalid, 2 usage error.
  --json               one JSON object per problem (code, severity, file, line, col, path, message)
  --policy-root DIR    includes must stay inside DIR (default: each policy file's own directory)
  --kind policy|rules  how to read every FILE (default: a rule set when its $schema hint names
                       rules.schema.json, or when it has only rule-set keys and lies in a directory named
                       rules, like rules/*.yaml; a policy otherwise)`;

export async function runValidate(args: string[], out: (s: string) => void): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    out(USAGE);
    return 0;
  }
  let json = false;
  let policyRoot: string | undefined;
  let kind: FileKind | undefined;
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--json') json = true;
    else if (a === '--policy-root' || a === '--kind') {
      const v = args[++i];
      if (a === '--policy-root') {
        if (v === undefined || v.startsWith('--')) {
          out(`--policy-root needs a directory\n\n${USAGE}`);
          return 2;
        }
        policyRoot = v;
      } else {
        if (v !== 'policy' && v !== 'rules') {
          out(`--kind needs policy or rules\n\n${USAGE}`);
          return 2;
        }
        kind = v;
      }
    } else if (a.startsWith('--')) {
      out(`unknown option ${a}\n\n${USAGE}`);
      return 2;
    } else files.push(a);
  }
  if (files.length === 0) {
    out(USAGE);
    return 2;
  }
  let failed = false;
  for (const file of files) {
    const read = fsReader()(file);
    const fileKind = kind ?? ('text' in read ? guessKind(read.text, file) : 'policy');
    const opts = { ...(policyRoot === undefined ? {} : { root: policyRoot }), testing: 'warning' as const };
    let issues: PolicyIssue[];
    let summary = '';
    if (fileKind === 'rules') {
      const harness = ruleSetHarness(file);
      const loaded = loadPolicy(harness.path, harness.read, opts);
      // Problems of the harness itself can only be about reaching the file: say them about the file.
      issues = loaded.issues.map((i) => (i.file === harness.path ? { ...i, file, line: 0, col: 0, path: [], includedFrom: [] } : { ...i, includedFrom: i.includedFrom.filter((f) => f.file !== harness.path) }));
      if (loaded.ok) {
        const compiled = compilePolicy(loaded.policy);
        if (!compiled.ok) issues = [...issues, ...compiled.issues];
        else {
          const rules = compiled.policy.stats.rules;
          const sets = Object.values(loaded.policy.sets).reduce((n, byName) => n + Object.keys(byName).length, 0);
          const included = Object.keys(loaded.policy.sources).length - 2;
          summary = `${file}: valid rule-set file (${rules} rule${rules === 1 ? '' : 's'}, ${sets} set${sets === 1 ? '' : 's'}${included > 0 ? `, ${included} included file${included === 1 ? '' : 's'}` : ''})`;
        }
      }
    } else {
      const loaded = loadPolicy(file, undefined, opts);
      issues = loaded.issues;
      if (loaded.ok) {
        const compiled = compilePolicy(loaded.policy);
        if (!compiled.ok) issues = [...issues, ...compiled.issues];
        else {
          const s = compiled.policy.stats;
          const scopes = s.scopes === 1 ? '1 scope' : `${s.scopes} scopes`;
          const included = Object.keys(loaded.policy.sources).length - 1;
          summary = `${file}: valid (${s.rules} rule${s.rules === 1 ? '' : 's'} in ${scopes}${included > 0 ? `, ${included} included file${included === 1 ? '' : 's'}` : ''})`;
        }
      }
    }
    const sorted = sortIssues(issues);
    for (const i of sorted) out(json ? JSON.stringify(i) : formatIssue(i));
    if (hasErrors(issues)) {
      failed = true;
      if (!json) {
        const n = issues.filter((i) => i.severity === 'error').length;
        out(`${file}: invalid ${fileKind === 'rules' ? 'rule-set file ' : ''}(${n} error${n === 1 ? '' : 's'})`);
        if (kind === undefined && fileKind === 'policy' && 'text' in read && rulesShaped(read.text)) {
          out(`${file}: read as a policy; if it is a rule-set file (what policies include), check it with --kind rules`);
        }
      }
    } else if (!json) {
      out(summary);
    }
  }
  return failed ? 1 : 0;
}
