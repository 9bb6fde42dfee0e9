/**
 * Policy problems as data (zod style: a discriminating `code`, where it is, what is wrong) and, separately, the
 * one way they are printed: `file:line:column path: message`.
 *
 * Every problem the loader or the compiler finds becomes a PolicyIssue; nothing in src/policy throws for a bad
 * file.
 */

/** Stable codes, one per kind of problem; docs/policy.md lists them. */
export const POLICY_ISSUE = {
  /** The file could not be read (missing, permissions, not UTF-8). */
  READ: 'read',
  /** YAML syntax: the text is not well-formed YAML. */
  YAML: 'yaml',
  /** A key the schema does not know (typos: strict schemas reject them). */
  UNKNOWN_KEY: 'unknown_key',
  /** A required key is missing. */
  MISSING_KEY: 'missing_key',
  /** A value has the wrong type or is not one of the allowed values. */
  INVALID: 'invalid',
  /** A CIDR, port, domain, endpoint id or protocol that does not parse. */
  BAD_VALUE: 'bad_value',
  /** `$name` refers to a set that is not defined (or of another kind). */
  UNKNOWN_SET: 'unknown_set',
  /** Two things that must have distinct names share one (rules in a scope, sets, endpoints). */
  DUPLICATE: 'duplicate',
  /** Fields that contradict each other (ports without tcp/udp, sni together with http_host...). */
  CONFLICT: 'conflict',
  /** An include that cannot be resolved: missing file or a cycle. */
  INCLUDE: 'include',
  /** A size limit (rules per scope, set nesting depth, file size). */
  LIMIT: 'limit',
  /** Not an error: something that is valid but almost certainly not what was meant (e.g. an unreachable rule). */
  LINT: 'lint',
} as const;
export type PolicyIssueCode = (typeof POLICY_ISSUE)[keyof typeof POLICY_ISSUE];

export type PathSegment = string | number;

export interface SourcePos {
  file: string;
  /** 1-based; 0 when unknown. */
  line: number;
  /** 1-based; 0 when unknown. */
  col: number;
}

export interface PolicyIssue extends SourcePos {
  code: PolicyIssueCode;
  severity: 'error' | 'warning';
  /** Path of the offending node inside `file` (keys and list indexes). */
  path: PathSegment[];
  message: string;
  /** Include chain that brought `file` in, outermost first (empty for the policy file itself). */
  includedFrom: SourcePos[];
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `rules[2].dst_ports[0]`, `scopes.tenant-a.rules[0]`; keys that are not plain words are quoted. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(document)' : out;
}

export function formatPos(p: SourcePos): string {
  if (p.line <= 0) return p.file;
  return `${p.file}:${p.line}:${p.col}`;
}

/** The one line (plus include context lines) printed for an issue. */
export function formatIssue(issue: PolicyIssue): string {
  const tag = issue.severity === 'warning' ? 'warning: ' : '';
  let s = `${formatPos(issue)} ${formatPath(issue.path)}: ${tag}${issue.message}`;
  for (let i = issue.includedFrom.length - 1; i >= 0; i--) s += `\n    included from ${formatPos(issue.includedFrom[i] as SourcePos)}`;
  return s;
}

/** Errors first in file order, then warnings; stable for snapshots. */
export function sortIssues(issues: readonly PolicyIssue[]): PolicyIssue[] {
  return [...issues].sort((a, b) => {
    if (a.severity !== b.severity) return a.severity === 'error' ? -1 : 1;
    if (a.file !== b.file) return a.file < b.file ? -1 : 1;
    if (a.line !== b.line) return a.line - b.line;
    return a.col - b.col;
  });
}

export function hasErrors(issues: readonly PolicyIssue[]): boolean {
  return issues.some((i) => i.severity === 'error');
}

/** Damerau-free edit distance, for "did you mean" hints on unknown keys and set names. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev = new Array<number>(n + 1);
  let cur = new Array<number>(n + 1);
  for (let j = 0; j <= n; j++) prev[j] = j;
  for (let i = 1; i <= m; i++) {
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const sub = prev[j - 1]! + (a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1);
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, sub);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[n]!;
}

/** The closest candidate within a small distance, for "did you mean ...?". */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}
