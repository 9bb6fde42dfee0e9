import t from 'tap';
import { parseInstreamReply } from '../../src/av/reply.js';

// Replies as clamd 1.4.6 (Debian clamav-daemon) writes them, NUL removed; see test/av/scan.test.ts for the real ones.
t.test('clamd INSTREAM replies map to typed outcomes', async (t) => {
  t.same(parseInstreamReply('stream: OK'), { kind: 'clean' });
  t.same(parseInstreamReply('stream: Win.Test.EICAR_HDB-1 FOUND'), { kind: 'infected', signature: 'Win.Test.EICAR_HDB-1' });
  t.same(parseInstreamReply('stream: GWI.Test.EICAR.UNOFFICIAL FOUND'), { kind: 'infected', signature: 'GWI.Test.EICAR.UNOFFICIAL' });
  t.match(parseInstreamReply('INSTREAM size limit exceeded. ERROR'), { kind: 'not_scanned', reason: 'size_limit' });
  t.match(parseInstreamReply('stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND'), { kind: 'not_scanned', reason: 'size_limit' });
  t.match(parseInstreamReply("stream: Can't allocate memory ERROR"), { kind: 'not_scanned', reason: 'scanner_error' });
});

t.test('empty and malformed replies are errors, never clean', async (t) => {
  t.match(parseInstreamReply(''), { kind: 'not_scanned', reason: 'scanner_error' });
  for (const text of ['OK', 'stream: ok', 'stream: OK ', 'stream:  FOUND', 'stream: two words FOUND', 'PONG', 'stream: OKAY', 'UNKNOWN COMMAND']) {
    t.match(parseInstreamReply(text), { kind: 'not_scanned', reason: 'protocol_error' }, JSON.stringify(text));
  }
  t.match(parseInstreamReply('UNKNOWN COMMAND ERROR'), { kind: 'not_scanned', reason: 'scanner_error' });
});
