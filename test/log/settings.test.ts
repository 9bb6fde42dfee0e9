import t from 'tap';
import { resolveSettings } from '../../src/config/settings.js';

t.test('verdict log settings: stdout on, file and CloudWatch off by default, bounded queue', async (t) => {
  const s = resolveSettings({}, {});
  t.match(s, { logStdout: true, logFile: '', cloudwatchLogGroup: '', cloudwatchLogStream: '', logQueueBytes: 8 * 1024 * 1024, logRatePerS: 1000, logSampleEvery: 1, logFlushMs: 5000, logFileMaxBytes: 100 * 1024 * 1024, logFileMaxFiles: 5 });
});

t.test('the CloudWatch group comes from --cloudwatch-log-group or GWLB_INSPECTOR_CLOUDWATCH_LOG_GROUP, validated', async (t) => {
  t.equal(resolveSettings({}, { GWLB_INSPECTOR_CLOUDWATCH_LOG_GROUP: '/gwlb/verdicts' }).cloudwatchLogGroup, '/gwlb/verdicts');
  t.equal(resolveSettings({ cloudwatchLogGroup: 'a.b-c_d#e' }, {}).cloudwatchLogGroup, 'a.b-c_d#e');
  t.throws(() => resolveSettings({ cloudwatchLogGroup: 'bad group' }, {}), /--cloudwatch-log-group/);
  t.throws(() => resolveSettings({ cloudwatchLogStream: 'host:1' }, {}), /--cloudwatch-log-stream/);
  t.throws(() => resolveSettings({ logQueueBytes: '10' }, {}), /--log-queue-bytes/);
  t.throws(() => resolveSettings({ logSampleEvery: '0' }, {}), /--log-sample-every/);
  t.equal(resolveSettings({}, { GWLB_INSPECTOR_LOG_STDOUT: 'false' }).logStdout, false);
});
