/**
 * Scan outcomes (docs/architecture.md §3: "not scanned" is its own outcome, never reported as clean) and their counters.
 */

export const NOT_SCANNED_REASONS = ['size_limit', 'timeout', 'unreachable', 'protocol_error', 'scanner_error', 'overloaded'] as const;
export type NotScannedReason = (typeof NOT_SCANNED_REASONS)[number];

export type ScanResult =
  | { readonly kind: 'clean' }
  | { readonly kind: 'infected'; readonly signature: string }
  /** `detail` says what happened for the operational log (an errno code, which deadline, clamd's own words). */
  | { readonly kind: 'not_scanned'; readonly reason: NotScannedReason; readonly detail: string };

export const CLEAN: ScanResult = Object.freeze({ kind: 'clean' });

export function notScanned(reason: NotScannedReason, detail: string): ScanResult {
  return { kind: 'not_scanned', reason, detail };
}

/** Every outcome counted; fixed shape, created once per scanner. */
export interface ScanCounters {
  /** Scans begun (including those refused as overloaded). */
  scans: number;
  clean: number;
  infected: number;
  notScanned: Record<NotScannedReason, number>;
  /** Object bytes handed to clamd. */
  bytesSent: number;
  /** Object bytes not sent: past the object size limit, or written after the outcome was known. */
  bytesDiscarded: number;
  /** Scans holding a clamd connection now / waiting for one now. */
  active: number;
  queued: number;
}

export function newScanCounters(): ScanCounters {
  return {
    scans: 0,
    clean: 0,
    infected: 0,
    notScanned: { size_limit: 0, timeout: 0, unreachable: 0, protocol_error: 0, scanner_error: 0, overloaded: 0 },
    bytesSent: 0,
    bytesDiscarded: 0,
    active: 0,
    queued: 0,
  };
}

export function countResult(c: ScanCounters, r: ScanResult): void {
  if (r.kind === 'clean') c.clean++;
  else if (r.kind === 'infected') c.infected++;
  else c.notScanned[r.reason]++;
}
