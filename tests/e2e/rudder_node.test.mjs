// @rudderstack/rudder-sdk-node 3.0.13 → ecrm /v1/batch. This client gzips every
// request and labels it Content-Type: application/x-www-form-urlencoded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Analytics from '@rudderstack/rudder-sdk-node';
import { metricSum, metricValue, randomId, startServer } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.cleanup(); });

const PRODUCTS = [
  { product_id: 'r-100', category: 'Books', name: 'Compilers', price: 49.99 },
  { product_id: 'r-200', category: 'Games', name: 'Go Board', price: 30 },
  { product_id: 'r-300', category: 'Books', name: 'COBOL Primer', price: 12.5 },
];

function assertNear(iso, ms, what) {
  const t = Date.parse(iso);
  assert.ok(Number.isFinite(t), `${what}: not a time: ${iso}`);
  assert.ok(Math.abs(t - ms) < 900, `${what}: ${iso} is not ${new Date(ms).toISOString()}`);
}

test('rudder-sdk-node (gzip, form content type) events build one profile', { timeout: 60_000 }, async () => {
  await srv.guard(async () => {
    const A = randomId('rs-anon-');
    const U = randomId('rs-user-');
    const before = await srv.metrics();

    // Constructor per the package README: new Analytics(writeKey, { dataPlaneUrl, ... }).
    const deliveryErrors = [];
    const client = new Analytics(srv.writeKey, {
      dataPlaneUrl: srv.baseUrl,
      flushAt: 5,
      flushInterval: 200,
      retryCount: 0,
      logLevel: 'error',
      errorHandler: (err) => deliveryErrors.push(err),
    });
    assert.equal(client.gzip, true, 'the client gzips by default');

    const base = Date.now() - 5 * 60 * 1000;
    let seq = 0;
    const at = () => new Date(base + 1000 * seq++);
    const pending = [];
    const expected = { identify: 0, page: 0, screen: 0, track: 0, group: 0 };
    const call = (type, params) => {
      expected[type] += 1;
      const p = new Promise((resolve, reject) => {
        client[type]({ ...params, originalTimestamp: at() }, (err) => (err ? reject(err) : resolve()));
      });
      pending.push(p);
      return p;
    };

    // identify first (the first event of this client is flushed at once) and wait for it.
    await call('identify', {
      anonymousId: A,
      userId: U,
      traits: { email: 'Grace@Example.ORG ', name: 'Grace Hopper', title: 'Rear Admiral' },
    });

    for (let i = 0; i < 4; i++) {
      call('page', {
        ...(i % 2 ? { userId: U } : { anonymousId: A }),
        name: `Page ${i}`,
        properties: { path: `/r/${i}`, url: `http://shop.example/r/${i}`, title: `Page ${i}` },
      });
    }
    call('screen', { anonymousId: A, name: 'Home Screen', properties: {} });
    call('screen', { userId: U, name: 'Cart Screen', properties: {} });
    call('group', { anonymousId: A, groupId: 'acme-inc', traits: { name: 'Acme' } });
    await Promise.all(pending);

    // product views one at a time, so arrival order = device time order.
    const viewIds = [{ userId: U }, { anonymousId: A }, { anonymousId: A, userId: U }];
    for (let i = 0; i < PRODUCTS.length; i++) {
      await call('track', { ...viewIds[i], event: 'Product Viewed', properties: { ...PRODUCTS[i] } });
    }
    const firstViewSeq = seq - PRODUCTS.length;
    const last = PRODUCTS[PRODUCTS.length - 1];
    call('track', { userId: U, event: 'Product Added', properties: { cart_id: 'c-9', ...last, quantity: 2 } });
    call('track', {
      userId: U,
      event: 'Order Completed',
      properties: { order_id: 'r-ord-1', revenue: 42.5, currency: 'USD', products: [{ ...last, quantity: 2 }] },
    });

    // flush() sends at most flushAt events per call: drain the queue, then wait for every callback.
    while (client.queue.length > 0) await client.flush();
    await client.flush();
    await Promise.all(pending);
    assert.deepEqual(deliveryErrors, [], 'rudder-sdk-node reported delivery errors');

    const total = Object.values(expected).reduce((a, b) => a + b, 0);

    const byAnon = await srv.getProfile(`anonymous_id:${A}`);
    const byUser = await srv.getProfile(`user_id:${U}`);
    const byEmail = await srv.getProfile('email:grace@example.org');
    assert.equal(byUser.id, byAnon.id, 'user_id lookup gives another profile');
    assert.equal(byEmail.id, byAnon.id, 'email lookup gives another profile');
    assert.deepEqual(byUser, byAnon);
    assert.deepEqual(byEmail, byAnon);
    const p = byAnon;

    assert.ok(p.identities.anonymous_id.includes(A));
    assert.ok(p.identities.user_id.includes(U));
    assert.ok(p.identities.email.includes('grace@example.org'), JSON.stringify(p.identities));
    assert.equal(p.traits.name, 'Grace Hopper');
    assert.equal(p.traits.title, 'Rear Admiral');

    assert.equal(p.stats.events, total, 'stats.events');
    assert.equal(p.stats.page_views, 4, 'stats.page_views');
    assert.equal(p.stats.screen_views, 2, 'stats.screen_views');
    assert.equal(p.stats.orders, 1, 'stats.orders');
    assert.ok(Math.abs(p.stats.revenue - 42.5) < 1e-9, `stats.revenue ${p.stats.revenue}`);
    assert.equal(p.stats.sessions, 1, 'stats.sessions');
    assert.equal(p.sessions.count, 1, 'sessions.count');
    assert.equal(p.sessions.current.events, total, 'sessions.current.events');
    assertNear(p.stats.first_seen, base, 'first_seen');
    assertNear(p.stats.last_seen, base + 1000 * (seq - 1), 'last_seen');

    assert.deepEqual(
      p.recent_products.map((r) => r.product_id),
      ['r-300', 'r-200', 'r-100'],
      `recent_products: ${JSON.stringify(p.recent_products)}`,
    );
    for (const r of p.recent_products) {
      const src = PRODUCTS.find((x) => x.product_id === r.product_id);
      assert.equal(r.name, src.name);
      assert.equal(r.category, src.category);
      assert.equal(r.price, src.price);
    }
    assertNear(p.recent_products[2].viewed_at, base + 1000 * firstViewSeq, 'viewed_at of r-100');
    assertNear(p.recent_products[1].viewed_at, base + 1000 * (firstViewSeq + 1), 'viewed_at of r-200');

    const keys = Object.keys(p.interests).map((k) => k.toLowerCase());
    assert.ok(keys.includes('books') && keys.includes('games'), `interests: ${JSON.stringify(p.interests)}`);
    const score = (name) => Object.entries(p.interests).find(([k]) => k.toLowerCase() === name)[1];
    assert.ok(score('books') > score('games'), `two book views should outweigh one game view: ${JSON.stringify(p.interests)}`);

    const afterText = await srv.metrics();
    for (const [type, n] of Object.entries(expected)) {
      assert.equal(
        metricValue(afterText, 'ecrm_events_accepted_total', { type }) - metricValue(before, 'ecrm_events_accepted_total', { type }),
        n,
        `ecrm_events_accepted_total{type="${type}"}`,
      );
    }
    assert.equal(
      metricSum(afterText, 'ecrm_events_accepted_total') - metricSum(before, 'ecrm_events_accepted_total'),
      total,
    );
  })();
});

test('the same gzip + form-urlencoded request shape, sent raw, is accepted', { timeout: 30_000 }, async () => {
  await srv.guard(async () => {
    const A = randomId('rs-raw-');
    const res = await srv.collect('/v1/batch', {
      batch: [{ type: 'track', event: 'Raw Gzip', anonymousId: A, messageId: randomId('m-'), originalTimestamp: new Date().toISOString() }],
      sentAt: new Date().toISOString(),
    }, { gzip: true, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { success: true });
    const p = await srv.getProfile(`anonymous_id:${A}`);
    assert.equal(p.stats.events, 1);
  })();
});
