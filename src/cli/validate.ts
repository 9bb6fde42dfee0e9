/**
 * `gwlb-inspector validate FILE...`: load and compile each policy as the appliance would, print every problem as
 * `file:line:column path: message`, and exit 0 when all files are valid, 1 when any is not (2: usage error).
 * Warnings (valid but suspicious, e.g. unreachable rules) are printed and do not fail validation.
 */
import { compilePolicy } from '../policy/compile.js';
import { formatIssue, hasErrors, sortIssues, type PolicyIssue } from '../policy/errors.js';
import { loadPolicy } from '../policy/load.js';

const USAGE = `Usage: gwlb-inspector validate [--json] [--policy-root DIR] FILE...

Checks policy files (and the rule-set files they include) and prints every problem as
  file:line:column path: message
Exit status: 0 all valid, 1 some file invalid, 2 usage error.
  --json               one JSON object per problem (code, severity, file, line, col, path, message)
  --policy-root DIR    includes must stay inside DIR (default: each policy file's own directory)`;

export async function runValidate(args: string[], out: (s: string) => void): Promise<number> {
  const json = args.includes('--json');
  if (args.includes('--help') || args.includes('-h')) {
    out(USAGE);
    return 0;
  }
  const rootAt = args.indexOf('--policy-root');
  const policyRoot = rootAt >= 0 ? args[rootAt + 1] : undefined;
  if (rootAt >= 0 && (policyRoot === undefined || policyRoot.startsWith('--'))) {
    out(`--policy-root needs a directory\n\n${USAGE}`);
    return 2;
  }
  const files = args.filter((a, i) => a !== '--json' && (rootAt < 0 || (i !== rootAt && i !== rootAt + 1)));
  const unknown = files.find((f) => f.startsWith('--'));
  if (files.length === 0 || unknown !== undefined) {
    out(unknown !== undefined ? `unknown option ${unknown}\n\n${USAGE}` : USAGE);
    return 2;
  }
  let failed = false;
  for (const file of files) {
    const loaded = loadPolicy(file, undefined, { ...(policyRoot === undefined ? {} : { root: policyRoot }), testing: 'warning' });
    let issues: PolicyIssue[] = loaded.issues;
    let summary = '';
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
    const sorted = sortIssues(issues);
    for (const i of sorted) out(json ? JSON.stringify(i) : formatIssue(i));
    if (hasErrors(issues)) {
      failed = true;
      if (!json) {
        const n = issues.filter((i) => i.severity === 'error').length;
        out(`${file}: invalid (${n} error${n === 1 ? '' : 's'})`);
      }
    } else if (!json) {
      out(summary);
    }
  }
  return failed ? 1 : 0;
}
