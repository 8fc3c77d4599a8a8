// Every documented rejection of the collector and the read API, with raw fetch.
// Each case checks: status, error JSON, ecrm_events_rejected_total{reason} +1
// (once per rejected request), no accepted event, and the seeded profile unchanged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basicAuth, metricSum, metricValue, randomId, startServer } from './lib/server.mjs';

let srv;
const SEED = randomId('bad-seed-');
let seedProfile;

before(async () => {
  srv = await startServer();
  const res = await srv.collect('/v1/track', {
    anonymousId: SEED,
    event: 'Seed Event',
    properties: { n: 1 },
    messageId: randomId('seed-'),
  });
  if (res.status !== 200) {
    srv.dumpLogs('seeding failed');
    throw new Error(`seeding the profile failed: ${res.status} ${res.text}`);
  }
  seedProfile = await srv.getProfile(`anonymous_id:${SEED}`);
});
after(async () => { await srv?.cleanup(); });

const ev = (extra = {}) => ({ type: 'track', event: 'Bad Input Probe', anonymousId: SEED, properties: { ok: true }, ...extra });
const pad = (n) => 'x'.repeat(n);

/**
 * Sends one bad request (send() → response) and checks everything around it.
 * expectIndex: a number for batch items, undefined when no index may be present.
 */
async function expectRejected({ send, status, code, expectIndex }) {
  // read before every case, so that one leak does not make every later case fail
  const p0 = await srv.getProfile(`anonymous_id:${SEED}`);
  const m0 = await srv.metrics();
  const res = await send();
  assert.equal(res.status, status, `status; body: ${res.text.slice(0, 500)}`);
  assert.ok(res.json && typeof res.json === 'object', `body is not JSON: ${res.text.slice(0, 500)}`);
  assert.ok(res.json.error && typeof res.json.error === 'object', `no "error" object: ${res.text.slice(0, 500)}`);
  const err = res.json.error;
  assert.equal(err.code, code, `error.code; body: ${res.text.slice(0, 500)}`);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0, 'error.message is empty');
  if (expectIndex === undefined) {
    assert.ok(!('index' in err), `unexpected error.index: ${res.text.slice(0, 500)}`);
  } else {
    assert.equal(err.index, expectIndex, `error.index; body: ${res.text.slice(0, 500)}`);
  }
  const allowed = new Set(['code', 'message', 'index']);
  for (const k of Object.keys(err)) assert.ok(allowed.has(k), `unexpected key error.${k}`);

  const m1 = await srv.metrics();
  if (code !== null) {
    assert.equal(
      metricValue(m1, 'ecrm_events_rejected_total', { reason: code }) - metricValue(m0, 'ecrm_events_rejected_total', { reason: code }),
      1,
      `ecrm_events_rejected_total{reason="${code}"} must grow by exactly 1`,
    );
    assert.equal(
      metricSum(m1, 'ecrm_events_rejected_total') - metricSum(m0, 'ecrm_events_rejected_total'),
      1,
      'no other rejection reason may move',
    );
  }
  assert.equal(
    metricSum(m1, 'ecrm_events_accepted_total') - metricSum(m0, 'ecrm_events_accepted_total'),
    0,
    'a rejected request must not accept any event',
  );
  assert.deepEqual(await srv.getProfile(`anonymous_id:${SEED}`), p0, 'the seeded profile changed');
  return res;
}

describe('collector rejections', () => {
  test('malformed JSON body → 400 invalid_json', srv_(() => expectRejected({
    status: 400, code: 'invalid_json',
    send: () => srv.collect('/v1/track', `{"anonymousId":"${SEED}","event":"Broken",`, { headers: { 'Content-Type': 'application/json' } }),
  })));

  test('malformed JSON in a batch → 400 invalid_json', srv_(() => expectRejected({
    status: 400, code: 'invalid_json',
    send: () => srv.collect('/v1/batch', `{"batch":[${JSON.stringify(ev())},]}`, { headers: { 'Content-Type': 'application/json' } }),
  })));

  test('body > 500 KB → 400 request_too_large', srv_(() => expectRejected({
    status: 400, code: 'request_too_large',
    // 30 events of ~20 KB each (each under the 32 KB event limit): ~600 KB in all
    send: () => srv.collect('/v1/batch', { batch: Array.from({ length: 30 }, () => ev({ properties: { blob: pad(20_000) } })) }),
  })));

  test('batch of 2501 events → 400 batch_too_large', srv_(() => expectRejected({
    status: 400, code: 'batch_too_large',
    send: () => {
      const batch = Array.from({ length: 2501 }, () => ({ type: 'track', event: 'E', anonymousId: SEED }));
      const body = JSON.stringify({ batch });
      assert.ok(body.length < 400 * 1024, `body must stay under 500 KB, is ${body.length}`);
      return srv.collect('/v1/batch', body, { headers: { 'Content-Type': 'application/json' } });
    },
  })));

  test('event > 32 KB at batch index 2 → 400 event_too_large, index 2, items 0-1 not applied', srv_(() => expectRejected({
    status: 400, code: 'event_too_large', expectIndex: 2,
    send: () => srv.collect('/v1/batch', {
      batch: [ev({ messageId: randomId('m-') }), ev({ messageId: randomId('m-') }), ev({ properties: { blob: pad(40_000) } }), ev()],
    }),
  })));

  test('batch item without type at index 1 → 400 missing_type, index 1', srv_(() => expectRejected({
    status: 400, code: 'missing_type', expectIndex: 1,
    send: () => srv.collect('/v1/batch', { batch: [ev({ messageId: randomId('m-') }), { event: 'No Type', anonymousId: SEED }] }),
  })));

  test('type "foo" → 400 invalid_type', srv_(() => expectRejected({
    status: 400, code: 'invalid_type', expectIndex: 0,
    send: () => srv.collect('/v1/batch', { batch: [{ type: 'foo', event: 'X', anonymousId: SEED }] }),
  })));

  test('track without event → 400 missing_event', srv_(() => expectRejected({
    status: 400, code: 'missing_event',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, properties: { a: 1 } }),
  })));

  test('neither userId nor anonymousId → 400 missing_identifier', srv_(() => expectRejected({
    status: 400, code: 'missing_identifier',
    send: () => srv.collect('/v1/track', { event: 'Nobody', properties: {} }),
  })));

  test('properties is a string → 400 invalid_field_type', srv_(() => expectRejected({
    status: 400, code: 'invalid_field_type',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, event: 'Typed', properties: 'oops' }),
  })));

  test('timestamp "yesterday" → 400 invalid_timestamp', srv_(() => expectRejected({
    status: 400, code: 'invalid_timestamp',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, event: 'When', timestamp: 'yesterday' }),
  })));

  test('timestamp in year 9999 → 400 invalid_timestamp', srv_(() => expectRejected({
    status: 400, code: 'invalid_timestamp',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, event: 'Far', timestamp: '9999-12-31T00:00:00Z' }),
  })));

  test('sentAt in year 9999 → 400 invalid_timestamp', srv_(() => expectRejected({
    status: 400, code: 'invalid_timestamp',
    send: () => srv.collect('/v1/track', {
      anonymousId: SEED, event: 'Skewed', originalTimestamp: new Date().toISOString(), sentAt: '9999-01-01T00:00:00Z',
    }),
  })));

  test('revenue 1e308 → 400 invalid_number', srv_(() => expectRejected({
    status: 400, code: 'invalid_number',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, event: 'Order Completed', properties: { revenue: 1e308 } }),
  })));

  test('a 5,000-byte traits.email → 400 invalid_identifier', srv_(() => expectRejected({
    status: 400, code: 'invalid_identifier',
    send: () => srv.collect('/v1/identify', { anonymousId: SEED, traits: { email: `${pad(5000)}@example.com` } }),
  })));

  test('messageId of 101 chars → 400 invalid_message_id', srv_(() => expectRejected({
    status: 400, code: 'invalid_message_id',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, event: 'Long Id', messageId: 'm'.repeat(101) }),
  })));

  test('alias without previousId → 400 missing_field', srv_(() => expectRejected({
    status: 400, code: 'missing_field',
    send: () => srv.collect('/v1/alias', { userId: randomId('alias-u-'), anonymousId: SEED }),
  })));

  test('group without groupId → 400 missing_field', srv_(() => expectRejected({
    status: 400, code: 'missing_field',
    send: () => srv.collect('/v1/group', { anonymousId: SEED, traits: { name: 'Acme' } }),
  })));

  test('no write key at all → 401 missing_write_key', srv_(() => expectRejected({
    status: 401, code: 'missing_write_key',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, event: 'No Key' }, { auth: false }),
  })));

  test('wrong write key (Basic) → 401 invalid_write_key', srv_(() => expectRejected({
    status: 401, code: 'invalid_write_key',
    send: () => srv.collect('/v1/track', { anonymousId: SEED, event: 'Wrong Key' }, { auth: basicAuth('not-the-key') }),
  })));

  test('wrong write key (body) → 401 invalid_write_key', srv_(() => expectRejected({
    status: 401, code: 'invalid_write_key',
    send: () => srv.collect('/v1/batch', { writeKey: 'not-the-key', batch: [ev()] }, { auth: false }),
  })));

  test('invalid gzip with Content-Encoding: gzip → 400 invalid_encoding', srv_(() => expectRejected({
    status: 400, code: 'invalid_encoding',
    send: () => srv.collect('/v1/track', 'this is not gzip at all', {
      headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
    }),
  })));
});

describe('read API errors', () => {
  test('GET /v1/profiles/x without token → 401 unauthorized', srv_(async () => {
    const res = await srv.getProfileRes(`anonymous_id:${SEED}`, { token: null });
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json?.error?.code, 'unauthorized', res.text);
    assert.equal(typeof res.json.error.message, 'string');
  }));

  test('GET /v1/profiles with the read key (not admin) is not authorized', srv_(async () => {
    const res = await srv.getProfileRes(`anonymous_id:${SEED}`, { token: srv.readKey });
    assert.ok(res.status === 401 || res.status === 403, `${res.status} ${res.text}`);
    assert.equal(res.json?.error?.code, res.status === 401 ? 'unauthorized' : 'forbidden', res.text);
  }));

  test('unknown identifier anonymous_id:nobody → 404 not_found', srv_(async () => {
    const res = await srv.getProfileRes('anonymous_id:nobody');
    assert.equal(res.status, 404, res.text);
    assert.equal(res.json?.error?.code, 'not_found', res.text);
    assert.equal(typeof res.json.error.message, 'string');
  }));

  test('malformed identifier "nocolon" → 400 invalid_identifier', srv_(async () => {
    const res = await srv.getProfileRes('nocolon');
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json?.error?.code, 'invalid_identifier', res.text);
    assert.equal(typeof res.json.error.message, 'string');
  }));

  test('personalize for an unknown visitor → 200 with the empty default', srv_(async () => {
    const res = await srv.personalizeRes(`anonymous_id:${randomId('never-seen-')}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { known: false, segments: [], scores: {}, offers: [], top_interests: [], recent_products: [] });
  }));

  test('personalize without a key → 401 unauthorized', srv_(async () => {
    const res = await srv.personalizeRes(`anonymous_id:${SEED}`, { token: null });
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json?.error?.code, 'unauthorized', res.text);
  }));
});

test('after all the rejections a valid event is still accepted and counted', srv_(async () => {
  const p0 = await srv.getProfile(`anonymous_id:${SEED}`);
  assert.deepEqual(p0, seedProfile, 'the seeded profile changed during the rejection cases');
  const m0 = await srv.metrics();
  const res = await srv.collect('/v1/track', { anonymousId: SEED, event: 'Still Alive', messageId: randomId('m-') });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, { success: true });
  const p = await srv.getProfile(`anonymous_id:${SEED}`);
  assert.equal(p.id, seedProfile.id);
  assert.equal(p.stats.events, p0.stats.events + 1);
  const m1 = await srv.metrics();
  assert.equal(
    metricValue(m1, 'ecrm_events_accepted_total', { type: 'track' }) - metricValue(m0, 'ecrm_events_accepted_total', { type: 'track' }),
    1,
  );
  // every rejection above was counted once; the total never went backwards
  assert.ok(metricSum(m1, 'ecrm_events_rejected_total') >= 18, 'rejections counted');
}));

// test body wrapper: print the server log when the test fails
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
