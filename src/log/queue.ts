/**
 * A FIFO of serialized log lines bounded in bytes. `push` refuses (returns false) instead of growing past the cap,
 * so a sink that stalls (CloudWatch unreachable, a full disk, a blocked stdout pipe) costs at most `maxBytes` of
 * memory; the router counts what was refused.
 */

export interface LogEntry {
  /** One JSON object, no trailing newline. */
  line: string;
  /** UTF-8 length of `line`. */
  bytes: number;
  /** Event time, epoch ms (CloudWatch's timestamp). */
  timeMs: number;
}

/** Consumed slots kept before the backing array is compacted. */
const COMPACT_AFTER = 1024;

export class LogQueue {
  private items: LogEntry[] = [];
  private head = 0;
  bytes = 0;

  constructor(readonly maxBytes: number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** Appends when the entry fits under maxBytes; false (nothing stored) otherwise. */
  push(entry: LogEntry): boolean {
    if (this.bytes + entry.bytes > this.maxBytes) return false;
    this.items.push(entry);
    this.bytes += entry.bytes;
    return true;
  }

  /** The i-th entry from the front, or undefined. */
  peek(i = 0): LogEntry | undefined {
    return this.items[this.head + i];
  }

  shift(): LogEntry | undefined {
    const e = this.items[this.head];
    if (e === undefined) return undefined;
    this.items[this.head] = undefined as unknown as LogEntry;
    this.head++;
    this.bytes -= e.bytes;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return e;
  }

  /** Removes everything; returns how many entries were dropped. */
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    return n;
  }
}
