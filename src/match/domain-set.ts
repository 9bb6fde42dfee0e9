/**
 * Domain-name sets: exact names and "*.suffix" patterns (every name strictly below suffix, at any depth),
 * with exclusions, compared case-insensitively (RFC 4343) after dropping a trailing dot.
 *
 * Lookup cost is one hash probe per label of the name (names have at most 127 labels), independent of the number
 * of patterns. Runs once per flow (when its SNI/Host is read), never per packet.
 */
/** Lowercase ASCII, no trailing dot: the form names are compared in (DNS names are case-insensitive, RFC 4343). */
export function normalizeDomain(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export class DomainSet {
  private readonly exact = new Set<string>();
  private readonly suffixes = new Set<string>();
  /** Referenced sets that have their own exclusions, so cannot be flattened into the two sets above. */
  private readonly nested: DomainSet[] = [];
  private except: DomainSet | null = null;

  addExact(name: string): void {
    this.exact.add(name);
  }
  addSubdomains(suffix: string): void {
    this.suffixes.add(suffix);
  }
  addSet(other: DomainSet): void {
    if (other.except === null) {
      for (const n of other.exact) this.exact.add(n);
      for (const s of other.suffixes) this.suffixes.add(s);
      for (const n of other.nested) this.nested.push(n);
    } else {
      this.nested.push(other);
    }
  }
  setExcept(except: DomainSet): void {
    this.except = except;
  }

  /** `name` must already be normalized (lower case, no trailing dot). */
  has(name: string): boolean {
    return this.why(name) !== undefined;
  }

  /** The pattern that matched (for explain), or undefined. */
  why(name: string): string | undefined {
    const hit = this.includes(name);
    if (hit === undefined) return undefined;
    if (this.except !== null && this.except.has(name)) return undefined;
    return hit;
  }

  private includes(name: string): string | undefined {
    if (this.exact.has(name)) return name;
    if (this.suffixes.size > 0) {
      for (let i = name.indexOf('.'); i >= 0; i = name.indexOf('.', i + 1)) {
        const suffix = name.slice(i + 1);
        if (this.suffixes.has(suffix)) return `*.${suffix}`;
      }
    }
    for (const n of this.nested) {
      const w = n.why(name);
      if (w !== undefined) return w;
    }
    return undefined;
  }

  describe(): string {
    const parts = [...this.exact, ...[...this.suffixes].map((s) => `*.${s}`)];
    for (const n of this.nested) parts.push(`(${n.describe()})`);
    let s = parts.length > 6 ? `${parts.slice(0, 6).join(', ')}, … (${parts.length} patterns)` : parts.join(', ');
    if (this.except !== null) s += ` except ${this.except.describe()}`;
    return s;
  }
}

