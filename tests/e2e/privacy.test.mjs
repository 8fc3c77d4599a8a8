// The privacy lifecycle (docs/privacy.md) through the real @segment/analytics-node client:
// consent from context.consent.categoryPreferences, retention (--retention-days), the access
// export (GET /v1/profiles/{id}/export), and erasure with the erasure ledger (a replay of the
// person's old events does not bring them back).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Analytics } from '@segment/analytics-node';
import { metricValue, randomId, startServer } from './lib/server.mjs';

const DAY = 24 * 3600 * 1000;
let srv;
before(async () => {
  srv = await startServer({
    extraArgs: [
      '--consent', 'store=Analytics',
      '--consent', 'personalize=Advertising',
      '--retention-days', '30',
      '--retention-sweep-seconds', '1',
    ],
  });
});
after(async () => { await srv?.cleanup(); });

// Sends the calls (type, params) through analytics-node, `base` + 1 s per call; resolves when all
// are delivered.
async function send(calls, base) {
  const analytics = new Analytics({ writeKey: srv.writeKey, host: srv.baseUrl, flushAt: 20, flushInterval: 100, maxRetries: 2 });
  const errors = [];
  analytics.on('error', (err) => errors.push(err));
  const delivered = calls.map(([type, params], i) => new Promise((resolve, reject) => {
    analytics[type]({ ...params, timestamp: new Date(base + 1000 * i) }, (err) => (err ? reject(err) : resolve()));
  }));
  await analytics.closeAndFlush({ timeout: 10_000 });
  await Promise.all(delivered);
  assert.deepEqual(errors, []);
}

const consent = (prefs) => ({ consent: { categoryPreferences: prefs } });
const admin = () => ({ Authorization: `Bearer ${srv.adminToken}` });

async function until(what, fn, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('consent: a withdrawal drops the behaviour, personalization follows its own category', { timeout: 30_000 }, async () => {
  await srv.guard(async () => {
    const A = randomId('c-anon-');
    const U = randomId('c-user-');
    const base = Date.now() - 60_000;
    await send([
      ['identify', { anonymousId: A, userId: U, traits: { name: 'Ada' }, context: consent({ Analytics: true, Advertising: true }) }],
      ['track', { anonymousId: A, event: 'Product Viewed', properties: { product_id: 'sku-1', category: 'Shoes', price: 10 } }],
    ], base);
    let p = await srv.getProfile(`user_id:${U}`);
    assert.equal(p.stats.events, 2);
    assert.ok(p.interests.Shoes > 0, JSON.stringify(p.interests));
    assert.equal(p.consent.store.state, 'granted');
    let z = await srv.personalize(`user_id:${U}`);
    assert.equal(z.known, true);
    assert.equal(z.top_interests[0].category, 'Shoes');

    // Withdrawn (and no advertising): the behaviour goes, the identity and traits stay.
    await send([
      ['page', { anonymousId: A, name: 'Settings', context: consent({ Analytics: false, Advertising: false }) }],
      ['track', { anonymousId: A, event: 'Product Viewed', properties: { product_id: 'sku-2', category: 'Hats', price: 5 } }],
    ], base + 10_000);
    p = await srv.getProfile(`anonymous_id:${A}`);
    assert.equal(p.consent.store.state, 'denied');
    assert.equal(p.consent.personalize.state, 'denied');
    assert.equal(p.stats.events, 0);
    assert.deepEqual(p.interests, {});
    assert.deepEqual(p.recent_products, []);
    assert.equal(p.traits.name, 'Ada');
    assert.deepEqual(p.identities.user_id, [U]);
    z = await srv.personalize(`user_id:${U}`);
    assert.equal(z.known, false, `personalize without consent: ${JSON.stringify(z)}`);
    assert.deepEqual(z.top_interests, []);

    // Granted again: collected from then on.
    await send([
      ['page', { anonymousId: A, name: 'Home', context: consent({ Analytics: true }) }],
    ], base + 20_000);
    p = await srv.getProfile(`anonymous_id:${A}`);
    assert.equal(p.consent.store.state, 'granted');
    assert.equal(p.stats.events, 1);
    assert.equal(p.stats.page_views, 1);
  })();
});

test('export: everything held about a person, for the admin only', { timeout: 30_000 }, async () => {
  await srv.guard(async () => {
    const A = randomId('x-anon-');
    const U = randomId('x-user-');
    await send([
      ['page', { anonymousId: A, name: 'Home' }],
      ['identify', { anonymousId: A, userId: U, traits: { email: `${U}@example.com`, plan: 'gold' } }],
      ['track', { userId: U, event: 'Order Completed', properties: { revenue: 42, products: [{ product_id: 'p1', category: 'Bags' }] } }],
    ], Date.now() - 30_000);
    const path = `/v1/profiles/${encodeURIComponent(`user_id:${U}`)}/export`;
    assert.equal((await srv.request('GET', path)).status, 401);
    assert.equal((await srv.request('GET', path, { headers: { Authorization: `Bearer ${srv.readKey}` } })).status, 401);
    const res = await srv.request('GET', path, { headers: admin() });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-disposition') ?? '', /^attachment; filename="profile-.+\.json"$/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const x = res.json;
    assert.equal(x.format, 'ecrm.export.v1');
    assert.ok(Date.parse(x.generated_at) > 0);
    assert.equal(x.profile.stats.events, 3);
    assert.equal(x.profile.stats.revenue, 42);
    assert.deepEqual(x.profile.identities.user_id, [U]);
    assert.deepEqual(x.profile.identities.email, [`${U}@example.com`]);
    assert.equal(x.identity_graph.profile_id, x.profile.id);
    assert.equal(x.stored.traits.plan.source, 'events');
    assert.ok(Date.parse(x.stored.traits.plan.updated_at) > 0);
    assert.equal(x.stored.sessions.length, 1);
    assert.equal(x.stored.sessions[0].events, 3);
    assert.ok(x.stored.interests.Bags.score > 0);
    assert.equal(x.stored.message_fingerprints, 3);
    // By profile id too, and 404 for nobody.
    const byId = await srv.request('GET', `/v1/profiles/id:${x.profile.id}/export`, { headers: admin() });
    assert.equal(byId.status, 200);
    assert.equal(byId.json.profile.id, x.profile.id);
    const nobody = await srv.request('GET', `/v1/profiles/${encodeURIComponent('user_id:nobody-at-all')}/export`, { headers: admin() });
    assert.equal(nobody.status, 404);
    assert.equal(nobody.json.error.code, 'not_found');
  })();
});

test('erasure: a replay of the erased person\'s history does not bring them back', { timeout: 30_000 }, async () => {
  await srv.guard(async () => {
    const A = randomId('e-anon-');
    const U = randomId('e-user-');
    const history = [
      ['page', { anonymousId: A, name: 'Home' }],
      ['identify', { anonymousId: A, userId: U, traits: { email: `${U}@example.com` } }],
      ['track', { userId: U, event: 'Signed In' }],
    ];
    const base = Date.now() - 60_000;
    await send(history, base);
    assert.equal((await srv.getProfile(`user_id:${U}`)).stats.events, 3);
    const dropped0 = metricValue(await srv.metrics(), 'ecrm_erasure_ledger_dropped_total');
    const del = await srv.request('DELETE', `/v1/profiles/${encodeURIComponent(`email:${U}@example.com`)}`, { headers: admin() });
    assert.equal(del.status, 200, del.text);
    await send(history, base);  // the replay: new messageIds, the old times
    for (const id of [`anonymous_id:${A}`, `user_id:${U}`, `email:${U}@example.com`]) {
      assert.equal((await srv.getProfileRes(id)).status, 404, `${id} came back`);
    }
    const metrics = await srv.metrics();
    assert.equal(metricValue(metrics, 'ecrm_erasure_ledger_dropped_total') - dropped0, 3);
    assert.equal(metricValue(metrics, 'ecrm_profiles_deleted_total', { reason: 'request' }) >= 1, true);
    // The device's next visit (after the erasure) is a new, unknown visitor.
    await send([['page', { anonymousId: A, name: 'Back' }]], Date.now() + 1000);
    const fresh = await srv.getProfile(`anonymous_id:${A}`);
    assert.equal(fresh.stats.events, 1);
    assert.deepEqual(fresh.identities.user_id ?? [], []);
  })();
});

test('retention: a profile not seen for --retention-days is erased by the sweep, and stays so', { timeout: 30_000 }, async () => {
  await srv.guard(async () => {
    const OLD = randomId('r-old-');
    const NEW = randomId('r-new-');
    const history = [['page', { anonymousId: OLD, name: 'Home' }], ['track', { anonymousId: OLD, event: 'Signed Up' }]];
    await send(history, Date.now() - 40 * DAY);
    await send([['page', { anonymousId: NEW, name: 'Home' }]], Date.now() - 29 * DAY);
    await until('the retention sweep', async () => (await srv.getProfileRes(`anonymous_id:${OLD}`)).status === 404);
    assert.equal((await srv.getProfile(`anonymous_id:${NEW}`)).stats.events, 1, 'seen 29 days ago: kept');
    const metrics = await srv.metrics();
    assert.ok(metricValue(metrics, 'ecrm_profiles_deleted_total', { reason: 'retention' }) >= 1);
    await send(history, Date.now() - 40 * DAY);  // a replay of the expired history
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await srv.getProfileRes(`anonymous_id:${OLD}`)).status, 404);
  })();
});
