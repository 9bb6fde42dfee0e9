/** The contract between the log router and a sink (stdout, rotating file, CloudWatch Logs). */
import type { LogQueue } from '../queue.js';

export interface LogSink {
  readonly name: string;
  /**
   * Batching hint: the router hands entries over as soon as `batchBytes` bytes wait, or when the oldest has
   * waited `lingerMs` (0 and 0: at once). On shutdown it hands over at once.
   */
  readonly lingerMs: number;
  readonly batchBytes: number;
  /**
   * Takes entries from the front of `queue` (at least one when it is not empty) and delivers them. The router
   * never calls it again before the returned promise settles, so a sink has one delivery in flight.
   */
  drain(queue: LogQueue): Promise<void>;
  /** Releases files and connections; pending entries were offered to drain() before. */
  close(): Promise<void>;
  /** Exact counters for /stats. */
  stats(): Record<string, number>;
}
