import type { LogQueue } from '../queue.js';

/**
 * Takes entries from the front of `queue` as newline-terminated lines while they fit in `maxBytes` (always at
 * least one), returning the text and how many entries it holds.
 */
export function takeLines(queue: LogQueue, maxBytes: number): { text: string; count: number; bytes: number } {
  const parts: string[] = [];
  let bytes = 0;
  for (;;) {
    const e = queue.peek();
    if (e === undefined) break;
    if (parts.length > 0 && bytes + e.bytes + 1 > maxBytes) break;
    queue.shift();
    parts.push(e.line);
    bytes += e.bytes + 1;
  }
  return { text: parts.length === 0 ? '' : parts.join('\n') + '\n', count: parts.length, bytes };
}
