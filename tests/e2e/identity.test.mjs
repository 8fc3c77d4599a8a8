// Identity resolution through the real clients: @segment/analytics-node 3.1.0 and
// @rudderstack/rudder-sdk-node 3.0.13 → ecrm /v1/batch, then the profiles, their
// identity graph (/v1/profiles/{id}/identities), the merge metrics and DELETE.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Analytics as SegmentAnalytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { metricSum, randomId, startServer } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.cleanup(); });

// One tracking client ("a device"), same interface for both libraries:
//   call(type, params) → promise settled when that event's batch was delivered
//   done()             → flushes everything, waits for every callback, checks no delivery error
// Device times are one second apart in call order, starting at `base`.
function segmentDevice(base) {
  const analytics = new SegmentAnalytics({
    writeKey: srv.writeKey,
    host: srv.baseUrl,
    flushAt: 5,
    flushInterval: 200,
    maxRetries: 2,
  });
  const errors = [];
  analytics.on('error', (err) => errors.push(err));
  const pending = [];
  let seq = 0;
  return {
    call(type, params) {
      const p = new Promise((resolve, reject) => {
        analytics[type]({ ...params, timestamp: new Date(base + 1000 * seq++) }, (err) => (err ? reject(err) : resolve()));
      });
      pending.push(p);
      return p;
    },
    async done() {
      await analytics.closeAndFlush({ timeout: 10_000 });
      await Promise.all(pending);
      assert.deepEqual(errors, [], 'analytics-node reported delivery errors');
    },
  };
}

function rudderDevice(base) {
  const errors = [];
  const client = new RudderAnalytics(srv.writeKey, {
    dataPlaneUrl: srv.baseUrl,
    flushAt: 5,
    flushInterval: 200,
    retryCount: 0,
    logLevel: 'error',
    errorHandler: (err) => errors.push(err),
  });
  const pending = [];
  let seq = 0;
  return {
    call(type, params) {
      const p = new Promise((resolve, reject) => {
        client[type]({ ...params, originalTimestamp: new Date(base + 1000 * seq++) }, (err) => (err ? reject(err) : resolve()));
      });
      pending.push(p);
      return p;
    },
    async done() {
      // flush() sends at most flushAt events per call: drain the queue, then wait for every callback.
      while (client.queue.length > 0) await client.flush();
      await client.flush();
      await Promise.all(pending);
      assert.deepEqual(errors, [], 'rudder-sdk-node reported delivery errors');
    },
  };
}

const CLIENTS = [
  { name: 'analytics-node', device: segmentDevice, prefix: 'seg' },
  { name: 'rudder-sdk-node', device: rudderDevice, prefix: 'rs' },
];

const ID_TYPES = ['anonymous_id', 'user_id', 'email'];

async function identities(id) {
  const res = await srv.request('GET', `/v1/profiles/${encodeURIComponent(id)}/identities`, {
    headers: { Authorization: `Bearer ${srv.adminToken}` },
  });
  assert.equal(res.status, 200, `GET /v1/profiles/${encodeURIComponent(id)}/identities -> ${res.status} ${res.text}`);
  return res.json;
}

// identities of a profile, with every type present (an absent type = [])
function idsOf(p) {
  return Object.fromEntries(ID_TYPES.map((t) => [t, p.identities?.[t] ?? []]));
}

// All identifiers read the very same profile (same id, same document); returns it.
async function sameProfile(ids, what) {
  const first = await srv.getProfile(ids[0]);
  assert.equal(typeof first.id, 'string');
  assert.ok(first.id.length > 0, `${what}: empty profile id`);
  for (const id of ids.slice(1)) {
    const p = await srv.getProfile(id);
    assert.equal(p.id, first.id, `${what}: ${id} reads profile ${p.id}, ${ids[0]} reads ${first.id}`);
    assert.deepEqual(p, first, `${what}: ${id} and ${ids[0]} read different documents`);
  }
  return first;
}

async function mergeCounters() {
  const text = await srv.metrics();
  return {
    merged: metricSum(text, 'ecrm_profile_merges_total'),
    refused: metricSum(text, 'ecrm_profile_merges_refused_total'),
  };
}

// ISO time `iso` within 900 ms of epoch-ms `ms` (event times may be skew-corrected a little)
function assertNear(iso, ms, what) {
  const t = Date.parse(iso);
  assert.ok(Number.isFinite(t), `${what}: not a time: ${iso}`);
  assert.ok(Math.abs(t - ms) < 900, `${what}: ${iso} is not ${new Date(ms).toISOString()}`);
}

// a history entry of the linking event: its message id is the one the client generated
function assertMessageId(h) {
  assert.equal(typeof h.message_id, 'string', `history entry without message_id: ${JSON.stringify(h)}`);
  assert.ok(h.message_id.length > 0, `history entry with an empty message_id: ${JSON.stringify(h)}`);
}

function page(ids, i) {
  return { ...ids, name: `Page ${i}`, properties: { path: `/id/${i}`, url: `http://shop.example/id/${i}`, title: `Page ${i}` } };
}

for (const { name, device, prefix } of CLIENTS) {
  test(`${name}: anonymous browsing, login, second device, alias of a third device, then DELETE`, { timeout: 30_000 }, async () => {
    await srv.guard(async () => {
      const U = randomId(`${prefix}-user-`);
      const A1 = randomId(`${prefix}-anon1-`);
      const A2 = randomId(`${prefix}-anon2-`);
      const A3 = randomId(`${prefix}-anon3-`);
      const emailLocal = randomId(`${prefix}-`);
      const email = `${emailLocal}@example.com`;
      const c0 = await mergeCounters();
      const base = Date.now() - 10 * 60 * 1000;

      // 1. device 1 browses anonymously (3 pages + 1 track), then logs in.
      const d1 = device(base);
      for (let i = 0; i < 3; i++) await d1.call('page', page({ anonymousId: A1 }, i));
      await d1.call('track', { anonymousId: A1, event: 'Product Viewed', properties: { product_id: 'sku-1', category: 'Shoes', price: 10 } });
      await d1.done();
      const anon1 = await srv.getProfile(`anonymous_id:${A1}`);
      assert.equal(anon1.stats.events, 4, 'device 1 before login: stats.events');
      assert.equal((await srv.getProfileRes(`user_id:${U}`)).status, 404, 'user unknown before login');

      const d1b = device(base + 10_000);
      await d1b.call('identify', {
        anonymousId: A1,
        userId: U,
        traits: { email: `  ${emailLocal.toUpperCase()}@Example.COM `, name: 'Ida Entity' },
      });
      await d1b.call('track', { userId: U, event: 'Signed In', properties: {} });
      await d1b.done();

      let p = await sameProfile([`anonymous_id:${A1}`, `user_id:${U}`, `email:${email}`], 'after login');
      assert.equal(p.id, anon1.id, 'login keeps the anonymous profile');
      assert.deepEqual(idsOf(p), { anonymous_id: [A1], user_id: [U], email: [email] });
      assert.equal(p.stats.events, 6, 'after login: 4 anonymous + identify + track');
      assert.equal(p.stats.page_views, 3, 'after login: stats.page_views');
      assert.equal(p.traits.name, 'Ida Entity');
      let c = await mergeCounters();
      assert.equal(c.merged - c0.merged, 0, 'linking an anonymous id to a new user id is not a merge');
      assert.equal(c.refused - c0.refused, 0);
      const ownerId = p.id;

      // 2. device 2 browses (2 pages), then logs in as the same user: merge into the older profile.
      const d2 = device(base + 20_000);
      await d2.call('page', page({ anonymousId: A2 }, 10));
      await d2.call('page', page({ anonymousId: A2 }, 11));
      await d2.done();
      const anon2 = await srv.getProfile(`anonymous_id:${A2}`);
      assert.notEqual(anon2.id, ownerId, 'device 2 starts as its own profile');
      assert.equal(anon2.stats.events, 2, 'device 2 before login: stats.events');

      const d2b = device(base + 30_000);
      await d2b.call('identify', { anonymousId: A2, userId: U, traits: { plan: 'pro' } });
      await d2b.done();

      p = await sameProfile([`anonymous_id:${A1}`, `anonymous_id:${A2}`, `user_id:${U}`, `email:${email}`], 'after second device');
      assert.equal(p.id, ownerId, 'merged into the older profile');
      assert.deepEqual(idsOf(p), { anonymous_id: [A1, A2], user_id: [U], email: [email] });
      assert.equal(p.stats.events, 6 + 2 + 1, 'stats.events = both devices + the identify');
      assert.equal(p.stats.page_views, 5, 'stats.page_views of both devices');
      assert.equal(p.traits.name, 'Ida Entity');
      assert.equal(p.traits.plan, 'pro');
      let g = await identities(`anonymous_id:${A2}`);
      assert.equal(g.profile_id, ownerId);
      assert.deepEqual(g.identities, p.identities);
      assert.deepEqual(g.merged_ids, [anon2.id]);
      let merges = g.history.filter((h) => h.action === 'merged');
      assert.equal(merges.length, 1, `history: ${JSON.stringify(g.history)}`);
      assert.equal(merges[0].other_profile, anon2.id, `history: ${JSON.stringify(g.history)}`);
      assert.equal(merges[0].identifier, `user_id:${U}`, 'the second device was linked by the user id');
      assertMessageId(merges[0]);
      assertNear(merges[0].at, base + 30_000, 'history[0].at = time of the second identify');
      assert.equal(g.history.filter((h) => h.action === 'refused').length, 0, `history: ${JSON.stringify(g.history)}`);
      c = await mergeCounters();
      assert.equal(c.merged - c0.merged, 1, 'ecrm_profile_merges_total after the second device');
      assert.equal(c.refused - c0.refused, 0);

      // 3. device 3 browses (1 page + 1 track), then alias(previousId = its anonymous id, userId).
      const d3 = device(base + 40_000);
      await d3.call('page', page({ anonymousId: A3 }, 20));
      await d3.call('track', { anonymousId: A3, event: 'Product Viewed', properties: { product_id: 'sku-3', category: 'Bags', price: 30 } });
      await d3.done();
      const anon3 = await srv.getProfile(`anonymous_id:${A3}`);
      assert.notEqual(anon3.id, ownerId, 'device 3 starts as its own profile');
      assert.equal(anon3.stats.events, 2, 'device 3 before alias: stats.events');

      const d3b = device(base + 50_000);
      await d3b.call('alias', { previousId: A3, userId: U });
      await d3b.done();

      p = await sameProfile(
        [`anonymous_id:${A1}`, `anonymous_id:${A2}`, `anonymous_id:${A3}`, `user_id:${U}`, `email:${email}`],
        'after alias',
      );
      assert.equal(p.id, ownerId, 'alias merges into the older profile');
      assert.deepEqual(idsOf(p), { anonymous_id: [A1, A2, A3], user_id: [U], email: [email] });
      assert.equal(p.stats.events, 9 + 2 + 1, 'stats.events = three devices + the alias');
      assert.equal(p.stats.page_views, 6);
      g = await identities(`user_id:${U}`);
      assert.equal(g.profile_id, ownerId);
      assert.deepEqual(g.merged_ids, [anon2.id, anon3.id]);
      merges = g.history.filter((h) => h.action === 'merged');
      assert.deepEqual(merges.map((h) => h.other_profile), [anon2.id, anon3.id], `history: ${JSON.stringify(g.history)}`);
      assert.deepEqual(merges.map((h) => h.identifier), [`user_id:${U}`, `anonymous_id:${A3}`]);
      assertMessageId(merges[1]);
      assert.notEqual(merges[1].message_id, merges[0].message_id);
      assertNear(merges[1].at, base + 50_000, 'history[1].at = time of the alias');
      assert.equal(g.history.length, 2, `history: ${JSON.stringify(g.history)}`);
      c = await mergeCounters();
      assert.equal(c.merged - c0.merged, 2, 'ecrm_profile_merges_total after the alias');
      assert.equal(c.refused - c0.refused, 0);

      // 5. DELETE erases the profile and every identifier (and the absorbed profiles' aliases).
      const del = await srv.request('DELETE', `/v1/profiles/${encodeURIComponent(`user_id:${U}`)}`, {
        headers: { Authorization: `Bearer ${srv.adminToken}` },
      });
      assert.equal(del.status, 200, `DELETE -> ${del.status} ${del.text}`);
      assert.deepEqual(del.json, { deleted: true });
      for (const id of [`anonymous_id:${A1}`, `anonymous_id:${A2}`, `anonymous_id:${A3}`, `user_id:${U}`, `email:${email}`]) {
        const r = await srv.getProfileRes(id);
        assert.equal(r.status, 404, `after DELETE, GET ${id} -> ${r.status} ${r.text}`);
        const ri = await srv.request('GET', `/v1/profiles/${encodeURIComponent(id)}/identities`, {
          headers: { Authorization: `Bearer ${srv.adminToken}` },
        });
        assert.equal(ri.status, 404, `after DELETE, GET ${id}/identities -> ${ri.status} ${ri.text}`);
      }
    })();
  });

  test(`${name}: two users on one shared device are never merged`, { timeout: 30_000 }, async () => {
    await srv.guard(async () => {
      const D = randomId(`${prefix}-shared-`);
      const UA = randomId(`${prefix}-userA-`);
      const UB = randomId(`${prefix}-userB-`);
      const c0 = await mergeCounters();
      const base = Date.now() - 10 * 60 * 1000;

      // user A logs in on the device and browses.
      const da = device(base);
      await da.call('identify', { anonymousId: D, userId: UA, traits: { name: 'Alice' } });
      await da.call('page', page({ anonymousId: D, userId: UA }, 1));
      await da.call('track', { anonymousId: D, event: 'Product Viewed', properties: { product_id: 'sku-9', category: 'Hats', price: 9 } });
      await da.done();
      const a0 = await sameProfile([`anonymous_id:${D}`, `user_id:${UA}`], 'user A');
      assert.equal(a0.stats.events, 3);

      // user B logs in on the same device: refused, the identify goes to B's own profile.
      const db = device(base + 10_000);
      await db.call('identify', { anonymousId: D, userId: UB, traits: { name: 'Bob' } });
      await db.call('track', { userId: UB, event: 'Signed In', properties: {} });
      // the placeholder "null"/"undefined" user ids are absent: these are anonymous events of D
      await db.call('track', { anonymousId: D, userId: ' NULL ', event: 'Placeholder Null', properties: {} });
      await db.call('track', { anonymousId: D, userId: 'undefined', event: 'Placeholder Undefined', properties: {} });
      await db.done();

      const a = await sameProfile([`anonymous_id:${D}`, `user_id:${UA}`], 'user A after B');
      const b = await srv.getProfile(`user_id:${UB}`);
      assert.equal(a.id, a0.id, 'A keeps its profile');
      assert.notEqual(b.id, a.id, 'B must not be merged into A');
      assert.deepEqual(idsOf(a), { anonymous_id: [D], user_id: [UA], email: [] }, 'A keeps the device, and only A');
      assert.deepEqual(idsOf(b).user_id, [UB]);
      assert.deepEqual(idsOf(b).anonymous_id, [], 'B does not get the device');
      assert.equal(a.stats.events, 3 + 2, 'A: its own 3 events + 2 placeholder-user events of the device');
      assert.equal(b.stats.events, 2, 'B: its identify + its track');
      assert.equal(a.traits.name, 'Alice');
      assert.equal(b.traits.name, 'Bob');
      for (const placeholder of ['null', 'NULL', 'undefined']) {
        const r = await srv.getProfileRes(`user_id:${placeholder}`);
        assert.equal(r.status, 404, `user_id:${placeholder} must not be an identifier: ${r.status} ${r.text}`);
      }

      const gA = await identities(`user_id:${UA}`);
      assert.equal(gA.profile_id, a.id);
      assert.deepEqual(gA.merged_ids, []);
      assert.equal(gA.history.filter((h) => h.action === 'merged').length, 0, `history: ${JSON.stringify(gA.history)}`);
      const refused = gA.history.filter((h) => h.action === 'refused');
      assert.equal(refused.length, 1, `history: ${JSON.stringify(gA.history)}`);
      assert.equal(typeof refused[0].reason, 'string');
      assert.ok(refused[0].reason.length > 0, `refused entry without a reason: ${JSON.stringify(refused[0])}`);
      assert.equal(refused[0].identifier, `user_id:${UB}`, 'refused: the second user id');
      assertMessageId(refused[0]);
      assertNear(refused[0].at, base + 10_000, 'refused entry at = time of B\'s identify');
      assert.equal(gA.history.length, 1, `history: ${JSON.stringify(gA.history)}`);
      const gB = await identities(`user_id:${UB}`);
      assert.equal(gB.profile_id, b.id);
      assert.deepEqual(gB.merged_ids, []);
      assert.deepEqual(gB.history, []);
      assert.deepEqual(gB.identities, b.identities);

      const c = await mergeCounters();
      assert.equal(c.merged - c0.merged, 0, 'ecrm_profile_merges_total must not move');
      assert.equal(c.refused - c0.refused, 1, 'ecrm_profile_merges_refused_total');
    })();
  });
}
