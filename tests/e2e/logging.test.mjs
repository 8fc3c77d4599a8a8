// --log-format json: every line ecrm writes to stderr is one JSON object that a log collector can
// parse, with the fields docs name, also for messages with quotes and control characters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';

test('--log-format json writes one valid JSON object per line', async () => {
  const srv = await startServer({ extraArgs: ['--log-format', 'json', '--log-level', 'debug'] });
  try {
    // A bad rule push logs a warning whose text carries the rule's quotes and newlines.
    const auth = { Authorization: `Bearer ${srv.adminToken}`, 'Content-Type': 'application/json' };
    await srv.request('PUT', '/v1/rules', { body: '{"rules":[{"id":"q\\"x","when":"((\\n"}]}', headers: auth });
  } finally {
    await srv.stop();
  }
  // The server's stdout also carries the plain "ecrm listening on" line; stderr is the log.
  const lines = srv.logText().split('\n').filter((l) => l.startsWith('{'));
  assert.ok(lines.length >= 3, `expected log lines, got:\n${srv.logText()}`);
  for (const line of lines) {
    const entry = JSON.parse(line);  // throws on an invalid line
    for (const key of ['time', 'level', 'thread', 'logger', 'message']) {
      assert.ok(key in entry, `${key} in ${line}`);
    }
    assert.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
  }
  assert.ok(lines.some((l) => JSON.parse(l).message.startsWith('listening on')), 'the start line');
  const stray = srv.logText().split('\n').filter((l) => l.trim() && !l.startsWith('{') &&
                                                    !l.startsWith('ecrm listening on') && !/^ {2}|^Generated|^\[e2e\]/.test(l));
  assert.deepEqual(stray, [], 'only JSON on the log');
});
