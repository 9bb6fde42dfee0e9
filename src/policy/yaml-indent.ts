/**
 * Finding the line a YAML indentation mistake is on. The YAML parser notices a mis-indented line late: often on the
 * line before it, in its own terms ("Nested mappings are not allowed in compact mappings"). This reads the block
 * structure of the text line by line (maps of `key:` lines, lists of "- " items; block scalars and flow collections
 * skipped) and names the first line whose indentation fits no enclosing block, with its column and a sentence an
 * operator understands. src/policy/load.ts reports it instead of the parser's message when the two are at most a
 * couple of lines apart.
 */

/** Where a block-style YAML line's indentation went wrong (1-based line and column), in plain words. */
export interface IndentCulprit {
  line: number;
  col: number;
  message: string;
}

interface IndentLevel {
  /** Column (0-based) where the keys of a map or the "- " of a list's items start. */
  indent: number;
  kind: 'map' | 'seq';
  /** 0-based line that started the block, and its key or item text. */
  first: number;
  name: string;
  /** Lines seen at this level. */
  lines: number;
  /** Started on its own line under a `key:` (its column is free), not inline after "- " (its column is fixed). */
  own: boolean;
}

/** `key:` at the start of `s` (plain or quoted key): the text after the colon, or null when `s` is not a key. */
function afterKey(s: string): string | null {
  const m = /^(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{[\]},&*!|>%@`-][^#]*?|-[^\s#][^#]*?)\s*:(?:\s|$)/.exec(s);
  return m === null ? null : s.slice(m[0].length);
}

/** Net count of opening minus closing flow brackets outside quotes and comments. */
function flowBrackets(s: string): number {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote !== '') {
      if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || s[i - 1] === ' ')) break;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
  }
  return depth;
}

/** The value part of a line without a trailing comment. */
function valueText(v: string): string {
  return v.replace(/(^|\s)#.*$/, '').trim();
}

/** 0-based significant (not blank, not comment-only) lines of a text. */
function significantLines(lines: readonly string[]): boolean[] {
  return lines.map((l) => {
    const t = l.trim();
    return t !== '' && !t.startsWith('#');
  });
}

/**
 * Indent of the first significant line after line `i` indented deeper than `parent` and at most `max` (a sibling
 * of line i or of the block before it); -1 when the block ends first.
 */
function nextSiblingIndent(lines: readonly string[], i: number, parent: number, max: number): number {
  const sig = significantLines(lines);
  for (let j = i + 1; j < lines.length; j++) {
    if (sig[j] !== true) continue;
    const n = /^ */.exec(lines[j] ?? '')?.[0].length ?? 0;
    if (n <= parent) return -1;
    if (n <= max) return n;
  }
  return -1;
}

/** The file's indentation step: the most frequent increase from one significant line to the next (2 in ours). */
function indentStep(lines: readonly string[]): number {
  const sig = significantLines(lines);
  const counts = new Map<number, number>();
  let prev = -1;
  for (let j = 0; j < lines.length; j++) {
    if (sig[j] !== true) continue;
    const n = /^ */.exec(lines[j] ?? '')?.[0].length ?? 0;
    if (prev >= 0 && n > prev) counts.set(n - prev, (counts.get(n - prev) ?? 0) + 1);
    prev = n;
  }
  let best = 2;
  let bestCount = 0;
  for (const [d, c] of counts) {
    // Ties go to 2, the common YAML indentation, then to the smaller step.
    if (c > bestCount || (c === bestCount && best !== 2 && (d === 2 || d < best))) {
      best = d;
      bestCount = c;
    }
  }
  return best;
}

/**
 * Two lines of one block disagree (the first at column `first`, the next at `next`): is the first the odd one?
 * Yes when the line after them agrees with the second; on a tie, when the second sits where the file's
 * indentation step puts the block (`expected`) and the first does not.
 */
function firstIsOdd(first: number, next: number, after: number, expected: number): boolean {
  if (after === next) return true;
  if (after === first) return false;
  return next === expected && first !== expected;
}

/** Significant lines strictly between two 1-based lines. */
export function significantBetween(text: string, a: number, b: number): number {
  const sig = significantLines(text.split('\n'));
  let count = 0;
  for (let j = Math.min(a, b); j < Math.max(a, b) - 1; j++) if (sig[j] === true) count++;
  return count;
}

/**
 * Reads the block structure of a YAML text line by line (maps of `key:` lines, lists of "- " items, block scalars
 * and flow collections skipped) and returns the first line whose indentation fits no enclosing block: deeper than a
 * key that already has a value, back to a column no block above starts at, a key where a list's "- " belongs, or an
 * item where a map's keys are. Null when every line fits (valid YAML, or a problem that is not indentation).
 */
export function indentCulprit(text: string): IndentCulprit | null {
  const lines = text.split('\n');
  const step = indentStep(lines);
  let stack: IndentLevel[] = [];
  /** Column of a key (or "-") whose value starts on the next lines. */
  let opener: number | null = null;
  /** Block scalar (| or >): lines deeper than this column belong to it. */
  let block: number | null = null;
  let flow = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    const n = /^ */.exec(raw)?.[0].length ?? 0;
    const rest = raw.slice(n);
    if (rest === '' || rest.startsWith('#')) continue;
    if (rest.startsWith('\t')) return null;
    if (block !== null) {
      if (n > block) continue;
      block = null;
    }
    if (flow > 0) {
      flow += flowBrackets(rest);
      continue;
    }
    if (n === 0 && (rest.startsWith('---') || rest.startsWith('...') || rest.startsWith('%'))) {
      stack = [];
      opener = null;
      continue;
    }
    const isItem = /^-(?: |$)/.test(rest);
    const name = (isItem ? rest : (/^[^:]*/.exec(rest)?.[0] ?? rest)).trim().slice(0, 40);
    const at = (message: string): IndentCulprit => ({ line: i + 1, col: n + 1, message });
    // A block whose only line so far started on its own line: when the next line disagrees with it, that first
    // line is the odd one out (its siblings after it agree with each other), so it is the culprit.
    const firstOfBlock = (l: IndentLevel | undefined, m: number, parentIndent: number): IndentCulprit | null =>
      l !== undefined && l.own && l.lines === 1 && m > parentIndent && firstIsOdd(l.indent, m, nextSiblingIndent(lines, i, parentIndent, Math.max(m, l.indent)), parentIndent < 0 ? 0 : parentIndent + step)
        ? {
            line: l.first + 1,
            col: l.indent + 1,
            message: `"${l.name}" starts at column ${l.indent + 1}, but the next line of the same block ("${name}") starts at column ${m + 1}: indent both alike`,
          }
        : null;
    const opened = opener;
    opener = null;
    const top = stack[stack.length - 1];
    const level = (indent: number, kind: IndentLevel['kind'], own: boolean): IndentLevel => ({ indent, kind, first: i, name, lines: 0, own });
    if (opened !== null && n > opened) stack.push(level(n, isItem ? 'seq' : 'map', true));
    else if (opened !== null && isItem && top !== undefined && top.kind === 'map' && n === top.indent) stack.push(level(n, 'seq', true));
    else if (top === undefined) stack.push(level(n, isItem ? 'seq' : 'map', true));
    else if (n > top.indent) {
      const parent = stack[stack.length - 2];
      return (
        firstOfBlock(top, n, parent?.indent ?? -1) ??
        at(
          `"${name}" is indented to column ${n + 1}, deeper than the line above, which already has its value: ` +
            `to be another key of the same map, start it at column ${top.indent + 1}`,
        )
      );
    } else {
      const columns = [...new Set(stack.map((l) => l.indent + 1))].join(', ');
      let popped: IndentLevel | undefined;
      while (stack.length > 0 && (stack[stack.length - 1] as IndentLevel).indent > n) popped = stack.pop();
      let t = stack[stack.length - 1];
      if (t === undefined || t.indent !== n) {
        const parentOfT = stack[stack.length - 2];
        return (
          firstOfBlock(popped, n, t?.indent ?? -1) ??
          firstOfBlock(t, n, parentOfT?.indent ?? -1) ??
          at(`"${name}" starts at column ${n + 1}, which lines up with nothing above it (the blocks it could belong to start at columns ${columns}): indent it like the keys it belongs with`)
        );
      }
      if (t.kind === 'seq' && !isItem) {
        const parent = stack[stack.length - 2];
        if (parent !== undefined && parent.kind === 'map' && parent.indent === n) {
          stack.pop();
          t = parent;
        } else {
          const itemKeys = popped !== undefined && popped.kind === 'map' ? `a key of the item above starts at column ${popped.indent + 1}` : 'a key belongs deeper';
          return at(`"${name}" starts at column ${n + 1}, where the items ("- ") of a list start: ${itemKeys}, and a new item starts with "- "`);
        }
      }
      if (t.kind === 'map' && isItem) return at(`a list item ("- ") starts at column ${n + 1}, where the keys of a map start: put the list under a key ending with ":" and indent it`);
    }
    const cur = stack[stack.length - 1];
    if (cur !== undefined) cur.lines++;
    // The line's own structure: "- " opens an item whose content starts further right.
    let col = n;
    let body = rest;
    if (isItem) {
      const dash = /^-( +|$)/.exec(rest)?.[0].length ?? 1;
      col = n + dash;
      body = rest.slice(dash);
      // "- - x": a list inside the item, its items at this column.
      let lastDash = n;
      while (/^-(?: |$)/.test(body)) {
        stack.push({ indent: col, kind: 'seq', first: i, name: body.slice(0, 40), lines: 1, own: false });
        lastDash = col;
        const inner = /^-( +|$)/.exec(body)?.[0].length ?? 1;
        col += inner;
        body = body.slice(inner);
      }
      if (valueText(body) === '') {
        opener = lastDash;
        continue;
      }
    }
    const value = afterKey(body);
    if (value === null) {
      flow += flowBrackets(body);
      continue;
    }
    if (isItem) stack.push({ indent: col, kind: 'map', first: i, name: body.slice(0, 40), lines: 1, own: false });
    const v = valueText(value);
    if (v === '' || /^(?:[&!]\S+\s*)+$/.test(v)) opener = col;
    else if (/^[|>][-+0-9]*$/.test(v)) block = col;
    else flow += flowBrackets(v);
  }
  return null;
}
