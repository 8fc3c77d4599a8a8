// kill -9 durability: a 200 from the collector means the events survive SIGKILL,
// and messageIds are deduplicated across restarts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from './lib/prng.mjs';
import { randomId, startServer } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.cleanup(); });

const RUN = randomId('r');
const VISITORS = Array.from({ length: 30 }, (_, i) => `restart-${RUN}-v${String(i).padStart(2, '0')}`);
const BATCH_SIZE = 50;

const SEED = Number(process.env.ECRM_E2E_SEED || (Date.now() & 0x7fffffff));
const rand = mulberry32(SEED);

const TYPES = ['track', 'track', 'track', 'page', 'identify'];
function makeBatch(tag, b) {
  const batch = [];
  const counts = new Map();
  for (let i = 0; i < BATCH_SIZE; i++) {
    const anon = VISITORS[Math.floor(rand() * VISITORS.length)];
    const type = TYPES[Math.floor(rand() * TYPES.length)];
    const e = { type, anonymousId: anon, messageId: `${RUN}-${tag}-${b}-${i}`, timestamp: new Date().toISOString() };
    if (type === 'track') { e.event = 'Restart Probe'; e.properties = { b, i }; }
    if (type === 'page') { e.name = 'Restart Page'; e.properties = { path: `/restart/${b}/${i}` }; }
    if (type === 'identify') { e.traits = { last_batch: `${tag}-${b}` }; }
    batch.push(e);
    counts.set(anon, (counts.get(anon) || 0) + 1);
  }
  return { body: { batch, sentAt: new Date().toISOString() }, counts, tag, b };
}

function addCounts(into, counts) {
  for (const [k, v] of counts) into.set(k, (into.get(k) || 0) + v);
}

async function readCounts() {
  const out = new Map();
  for (const v of VISITORS) {
    const res = await srv.getProfileRes(`anonymous_id:${v}`);
    if (res.status === 404) { out.set(v, 0); continue; }
    assert.equal(res.status, 200, `profile ${v}: ${res.status} ${res.text}`);
    // each visitor only ever uses its own anonymous id: profiles must not merge
    assert.deepEqual(res.json.identities.anonymous_id, [v], `identities of ${v}`);
    out.set(v, res.json.stats.events);
  }
  return out;
}

function assertExact(actual, expected, what) {
  const diffs = [];
  for (const v of VISITORS) {
    if ((actual.get(v) || 0) !== (expected.get(v) || 0)) diffs.push(`${v}: got ${actual.get(v)} want ${expected.get(v) || 0}`);
  }
  assert.deepEqual(diffs, [], `${what} (seed ${SEED})`);
}

async function post(batch) {
  return srv.collect('/v1/batch', batch.body, { timeoutMs: 30_000 });
}

const expected = new Map();
const round1 = [];

test('20 acknowledged batches survive kill -9; resent batches are not counted twice', { timeout: 120_000 }, async () => {
  await srv.guard(async () => {
    for (let b = 0; b < 20; b++) {
      const batch = makeBatch('r1', b);
      const res = await post(batch);
      assert.equal(res.status, 200, `batch ${b}: ${res.text}`);
      assert.deepEqual(res.json, { success: true });
      addCounts(expected, batch.counts);
      round1.push(batch);
    }
    assertExact(await readCounts(), expected, 'counts before the kill');

    await srv.kill9();
    await srv.restart();
    assertExact(await readCounts(), expected, 'counts after kill -9 and restart');

    for (const b of [0, 7, 19]) {
      const res = await post(round1[b]);
      assert.equal(res.status, 200, `resent batch ${b}: ${res.text}`);
    }
    assertExact(await readCounts(), expected, 'counts after resending 3 batches (same messageIds)');
  })();
});

test('kill -9 while a concurrent sender is mid-stream', { timeout: 180_000 }, async (t) => {
  await srv.guard(async () => {
    assert.ok(round1.length === 20, 'the first round must have run');
    const batches = Array.from({ length: 60 }, (_, b) => makeBatch('r2', b));
    const acked = [];
    const failed = [];   // request sent, no 200 seen: may or may not be applied
    const unsent = [];
    let next = 0;
    let killed = false;
    let killPromise = null;

    // 3 concurrent senders. Once 12 batches are acknowledged, the next request
    // sent arms the kill a few ms later, so that it lands while requests are in flight.
    const killDelayMs = 1 + Math.floor(rand() * 3);
    const sender = async () => {
      for (;;) {
        const i = next++;
        if (i >= batches.length) return;
        if (killed) { unsent.push(batches[i]); continue; }
        const inFlight = post(batches[i]);
        if (!killPromise && acked.length >= 12) {
          killPromise = sleep(killDelayMs).then(() => { killed = true; return srv.kill9(); });
        }
        try {
          const res = await inFlight;
          if (res.status === 200) acked.push(batches[i]);
          else failed.push(batches[i]);
        } catch {
          failed.push(batches[i]);
        }
      }
    };
    await Promise.all([sender(), sender(), sender()]);
    assert.ok(killed, 'the server was never killed (fewer than 12 batches acknowledged?)');
    await killPromise;
    assert.ok(acked.length >= 12);
    t.diagnostic(`kill ${killDelayMs} ms after a send: acknowledged ${acked.length}, failed ${failed.length}, unsent ${unsent.length} batches (seed ${SEED})`);

    await srv.restart();
    const must = new Map(expected);
    for (const b of acked) addCounts(must, b.counts);
    const may = new Map(must);
    for (const b of failed) addCounts(may, b.counts);
    const after1 = await readCounts();
    const problems = [];
    for (const v of VISITORS) {
      const got = after1.get(v);
      if (got < (must.get(v) || 0) || got > (may.get(v) || 0)) {
        problems.push(`${v}: got ${got}, want between ${must.get(v) || 0} (acknowledged) and ${may.get(v) || 0} (+ failed)`);
      }
    }
    assert.deepEqual(problems, [], `after the mid-stream kill: acked ${acked.length}, failed ${failed.length}, unsent ${unsent.length} (seed ${SEED})`);

    // resend everything that was not acknowledged: exact totals, nothing twice
    for (const b of [...failed, ...unsent]) {
      const res = await post(b);
      assert.equal(res.status, 200, `resending r2 batch ${b.b}: ${res.text}`);
    }
    // and one acknowledged batch again, for good measure
    assert.equal((await post(acked[0])).status, 200);
    const final = new Map(expected);
    for (const b of batches) addCounts(final, b.counts);
    assertExact(await readCounts(), final, 'final counts after resending the failed batches');

    // a clean restart (SIGTERM) keeps them too
    const exit = await srv.stop();
    assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `SIGTERM exit: ${JSON.stringify(exit)}`);
    await srv.restart();
    assertExact(await readCounts(), final, 'counts after SIGTERM and restart');
  })();
});
