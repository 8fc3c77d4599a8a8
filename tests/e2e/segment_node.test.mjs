// @segment/analytics-node 3.1.0 → ecrm /v1/batch, then the profile is read back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Analytics } from '@segment/analytics-node';
import { metricSum, metricValue, randomId, startServer } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.cleanup(); });

const PRODUCTS = [
  { product_id: 'sku-1001', category: 'Shoes', name: 'Trail Runner', price: 89.9 },
  { product_id: 'sku-1002', category: 'Shoes', name: 'City Sneaker', price: 64 },
  { product_id: 'sku-2001', category: 'Bags', name: 'Canvas Tote', price: 25.5 },
];

// ISO time `iso` within 400 ms of epoch-ms `ms`
function assertNear(iso, ms, what) {
  const t = Date.parse(iso);
  assert.ok(Number.isFinite(t), `${what}: not a time: ${iso}`);
  assert.ok(Math.abs(t - ms) < 900, `${what}: ${iso} is not ${new Date(ms).toISOString()}`);
}

function lowerKeys(obj) {
  return Object.keys(obj || {}).map((k) => k.toLowerCase());
}

test('analytics-node events build one profile reachable by all three identifiers', { timeout: 60_000 }, async () => {
  await srv.guard(async () => {
    const A = randomId('seg-anon-');
    const U = randomId('seg-user-');
    const before = await srv.metrics();

    const analytics = new Analytics({
      writeKey: srv.writeKey,
      host: srv.baseUrl,
      flushAt: 5,
      flushInterval: 200,
      maxRetries: 2,
    });
    const deliveryErrors = [];
    analytics.on('error', (err) => deliveryErrors.push(err));

    // Device times one second apart, in call order, so "most recent" is unambiguous.
    const base = Date.now() - 10 * 60 * 1000;
    let seq = 0;
    const at = () => new Date(base + 1000 * seq++);
    // Promise that settles when the event's batch has been delivered (or failed).
    const sent = (fn, params) => new Promise((resolve, reject) => {
      fn({ ...params, timestamp: at() }, (err, ctx) => (err ? reject(err) : resolve(ctx)));
    });
    const expected = { identify: 0, page: 0, track: 0 };

    // 1. identify links A and U; delivered before anything else is sent.
    await sent(analytics.identify, {
      anonymousId: A,
      userId: U,
      traits: { email: ' Ada@Example.COM ', name: 'Ada Lovelace', plan: 'pro' },
    });
    expected.identify += 1;

    // 2. a burst of page calls (flushAt 5 → one full batch + one by interval),
    //    mixing anonymous-only, user-only and both.
    const pages = [];
    for (let i = 0; i < 6; i++) {
      const ids = i % 3 === 0 ? { anonymousId: A } : i % 3 === 1 ? { userId: U } : { anonymousId: A, userId: U };
      pages.push(sent(analytics.page, {
        ...ids,
        name: `Page ${i}`,
        properties: { path: `/p/${i}`, url: `http://shop.example/p/${i}`, title: `Page ${i}` },
      }));
      expected.page += 1;
    }
    await Promise.all(pages);

    // 3. product views, one at a time (each delivered before the next).
    const viewIds = [{ anonymousId: A }, { userId: U }, { anonymousId: A, userId: U }];
    for (let i = 0; i < PRODUCTS.length; i++) {
      await sent(analytics.track, { ...viewIds[i], event: 'Product Viewed', properties: { ...PRODUCTS[i] } });
      expected.track += 1;
    }

    // 4. cart + two orders, all on the most recently viewed product.
    const last = PRODUCTS[PRODUCTS.length - 1];
    const tail = [
      sent(analytics.track, { userId: U, event: 'Product Added', properties: { cart_id: 'cart-1', ...last, quantity: 1 } }),
      sent(analytics.track, {
        userId: U,
        event: 'Order Completed',
        properties: { order_id: 'ord-1', revenue: 42.5, currency: 'EUR', products: [{ ...last, quantity: 1 }] },
      }),
      sent(analytics.track, {
        anonymousId: A,
        event: 'Order Completed',
        properties: { order_id: 'ord-2', revenue: 17.25, currency: 'EUR', products: [{ ...last, quantity: 1 }] },
      }),
    ];
    expected.track += 3;
    await analytics.closeAndFlush({ timeout: 20_000 });
    await Promise.all(tail);
    assert.deepEqual(deliveryErrors, [], 'analytics-node reported delivery errors');

    const total = expected.identify + expected.page + expected.track;

    // The three identifiers resolve to the same profile.
    const byAnon = await srv.getProfile(`anonymous_id:${A}`);
    const byUser = await srv.getProfile(`user_id:${U}`);
    const byEmail = await srv.getProfile('email:ada@example.com');
    assert.equal(typeof byAnon.id, 'string');
    assert.ok(byAnon.id.length > 0);
    assert.equal(byUser.id, byAnon.id, 'user_id lookup gives another profile');
    assert.equal(byEmail.id, byAnon.id, 'email lookup gives another profile');
    assert.deepEqual(byUser, byAnon);
    assert.deepEqual(byEmail, byAnon);
    const p = byAnon;

    assert.ok(p.identities.anonymous_id.includes(A), `identities.anonymous_id: ${JSON.stringify(p.identities)}`);
    assert.ok(p.identities.user_id.includes(U), `identities.user_id: ${JSON.stringify(p.identities)}`);
    assert.ok(p.identities.email.includes('ada@example.com'), `identities.email: ${JSON.stringify(p.identities)}`);

    assert.equal(p.traits.name, 'Ada Lovelace');
    assert.equal(p.traits.plan, 'pro');

    assert.equal(p.stats.events, total, 'stats.events');
    assert.equal(p.stats.page_views, expected.page, 'stats.page_views');
    assert.equal(p.stats.screen_views, 0, 'stats.screen_views');
    assert.equal(p.stats.orders, 2, 'stats.orders');
    assert.ok(Math.abs(p.stats.revenue - 59.75) < 1e-9, `stats.revenue ${p.stats.revenue} != 59.75`);
    assert.equal(p.stats.sessions, 1, 'all events fall within 10 s: one session');
    assert.equal(p.sessions.count, 1, 'sessions.count');
    assert.equal(p.sessions.current.events, total, 'sessions.current.events');
    // Event times may be skew-corrected by (receivedAt - sentAt): allow a little slack.
    assertNear(p.stats.first_seen, base, 'first_seen = time of the identify');
    assertNear(p.stats.last_seen, base + 1000 * (seq - 1), 'last_seen = time of the last call');

    // recent_products: most recent first, each product once.
    assert.deepEqual(
      p.recent_products.map((r) => r.product_id),
      ['sku-2001', 'sku-1002', 'sku-1001'],
      `recent_products: ${JSON.stringify(p.recent_products)}`,
    );
    for (const r of p.recent_products) {
      const src = PRODUCTS.find((x) => x.product_id === r.product_id);
      assert.equal(r.name, src.name);
      assert.equal(r.category, src.category);
      assert.equal(r.price, src.price);
      assert.ok(!Number.isNaN(Date.parse(r.viewed_at)), `viewed_at ${r.viewed_at}`);
    }
    const viewedAt = p.recent_products.map((r) => Date.parse(r.viewed_at));
    assert.ok(viewedAt[0] >= viewedAt[1] && viewedAt[1] >= viewedAt[2], `viewed_at not descending: ${viewedAt}`);
    // the two older products were only viewed: their view time is the event timestamp
    assertNear(p.recent_products[1].viewed_at, base + 1000 * (1 + expected.page + 1), 'viewed_at of sku-1002');
    assertNear(p.recent_products[2].viewed_at, base + 1000 * (1 + expected.page), 'viewed_at of sku-1001');

    // interests: both categories, shoes viewed twice
    const keys = lowerKeys(p.interests);
    assert.ok(keys.includes('shoes'), `interests: ${JSON.stringify(p.interests)}`);
    assert.ok(keys.includes('bags'), `interests: ${JSON.stringify(p.interests)}`);
    for (const v of Object.values(p.interests)) assert.ok(v > 0, `interest score ${v}`);

    // personalize (read key) knows the visitor
    const pers = await srv.personalize(`user_id:${U}`);
    assert.equal(pers.known, true);
    assert.ok(Array.isArray(pers.top_interests) && pers.top_interests.length >= 1, JSON.stringify(pers));
    assert.ok(Array.isArray(pers.recent_products) && pers.recent_products.length >= 1, JSON.stringify(pers));
    const firstRecent = pers.recent_products[0];
    assert.equal(typeof firstRecent === 'string' ? firstRecent : firstRecent.product_id, 'sku-2001');

    // metrics: accepted counters grew by exactly what was sent
    const afterText = await srv.metrics();
    for (const type of ['identify', 'page', 'track']) {
      assert.equal(
        metricValue(afterText, 'ecrm_events_accepted_total', { type }) - metricValue(before, 'ecrm_events_accepted_total', { type }),
        expected[type],
        `ecrm_events_accepted_total{type="${type}"}`,
      );
    }
    assert.equal(
      metricSum(afterText, 'ecrm_events_accepted_total') - metricSum(before, 'ecrm_events_accepted_total'),
      total,
      'ecrm_events_accepted_total (all types)',
    );
  })();
});
