// /metrics passes `promtool check metrics`; CORS preflight; Segment settings emulation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { hasMetric, metricSum, parseMetrics, randomId, startServer } from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer();
  // some traffic so that every family has samples: accepted, rejected, reads
  const anon = randomId('metrics-');
  const ok = await srv.collect('/v1/batch', {
    batch: [
      { type: 'identify', anonymousId: anon, traits: { name: 'M' } },
      { type: 'track', anonymousId: anon, event: 'Product Viewed', properties: { product_id: 'p1', category: 'X' } },
      { type: 'page', anonymousId: anon, name: 'Home' },
    ],
  });
  const bad = await srv.collect('/v1/track', '{not json', { headers: { 'Content-Type': 'application/json' } });
  const read = await srv.getProfileRes(`anonymous_id:${anon}`);
  if (ok.status !== 200 || bad.status !== 400 || read.status !== 200) {
    srv.dumpLogs('metrics setup failed');
    throw new Error(`setup traffic failed: ${ok.status} ${ok.text} / ${bad.status} / ${read.status}`);
  }
});
after(async () => { await srv?.cleanup(); });

const PROMTOOL = process.env.PROMTOOL || '/usr/bin/promtool';

test('GET /metrics needs no auth and passes promtool check metrics', srv_(async () => {
  const res = await srv.request('GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') || '', /^text\/plain/, 'content type of /metrics');
  const text = res.text;

  assert.ok(
    existsSync(PROMTOOL),
    `${PROMTOOL} not found: install Debian package "prometheus" (apt-get install -y prometheus) or set PROMTOOL`,
  );
  const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(lint.error, undefined, `running promtool: ${lint.error}`);
  assert.equal(lint.status, 0, `promtool check metrics failed:\n${lint.stdout}${lint.stderr}`);

  for (const name of [
    'ecrm_events_accepted_total',
    'ecrm_events_rejected_total',
    'ecrm_http_request_duration_seconds_bucket',
    'ecrm_worker_queue_depth',
  ]) {
    assert.ok(hasMetric(text, name), `/metrics has no ${name}`);
  }
  assert.equal(metricSum(text, 'ecrm_events_accepted_total'), 3);
  assert.equal(metricSum(text, 'ecrm_events_rejected_total', { reason: 'invalid_json' }), 1);
  const buckets = parseMetrics(text).filter((s) => s.name === 'ecrm_http_request_duration_seconds_bucket');
  assert.ok(buckets.some((s) => s.labels.le === '+Inf' && s.value > 0), 'request histogram has observations');
}));

test('/healthz and /readyz need no auth', srv_(async () => {
  assert.equal((await srv.request('GET', '/healthz')).status, 200);
  assert.equal((await srv.request('GET', '/readyz')).status, 200);
}));

// Embedded mode: one instance owns every partition. The admin token is required.
test('GET /v1/cluster shows the one embedded instance owning every partition', srv_(async () => {
  assert.equal((await srv.request('GET', '/v1/cluster')).status, 401);
  const res = await srv.request('GET', '/v1/cluster', { headers: { Authorization: `Bearer ${srv.adminToken}` } });
  assert.equal(res.status, 200, res.text);
  const c = JSON.parse(res.text);
  assert.equal(c.mode, 'embedded');
  assert.ok(c.instance_id.length > 0);
  assert.equal(c.partitions.length, c.partition_count);
  assert.ok(c.partitions.every((p, i) => p.partition === i && p.owner === c.instance_id && p.state === 'active'));
}));

test('CORS preflight for /v1/t echoes the origin and allows credentials', srv_(async () => {
  const res = await srv.request('OPTIONS', '/v1/t', {
    headers: {
      Origin: 'http://shop.example',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization,content-type',
    },
  });
  assert.equal(res.status, 204, res.text);
  assert.equal(res.headers.get('access-control-allow-origin'), 'http://shop.example');
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  const allowHeaders = (res.headers.get('access-control-allow-headers') || '').toLowerCase();
  for (const h of ['authorization', 'content-type']) {
    assert.ok(allowHeaders.split(',').map((s) => s.trim()).includes(h), `Access-Control-Allow-Headers lacks ${h}: ${allowHeaders}`);
  }
  const allowMethods = (res.headers.get('access-control-allow-methods') || '').toUpperCase();
  assert.ok(allowMethods.includes('POST'), `Access-Control-Allow-Methods lacks POST: ${allowMethods}`);
}));

test('a browser-style POST /v1/t (text/plain, Origin) is accepted with CORS headers', srv_(async () => {
  const anon = randomId('cors-');
  const res = await srv.collect('/v1/t', JSON.stringify({
    anonymousId: anon, event: 'Browser Event', properties: {}, writeKey: srv.writeKey, messageId: randomId('ajs-'),
  }), { headers: { 'Content-Type': 'text/plain', Origin: 'http://shop.example' } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers.get('access-control-allow-origin'), 'http://shop.example');
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  assert.equal((await srv.getProfile(`anonymous_id:${anon}`)).stats.events, 1);
}));

test('GET /v1/projects/WK/settings answers the Segment settings JSON', srv_(async () => {
  const res = await srv.request('GET', `/v1/projects/${encodeURIComponent(srv.writeKey)}/settings`);
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers.get('content-type') || '', /^application\/json/);
  assert.ok(res.json, `not JSON: ${res.text}`);
  assert.equal(res.json.integrations?.['Segment.io']?.apiKey, srv.writeKey, res.text);
}));

function srv_(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      srv?.dumpLogs();
      throw err;
    }
  };
}
