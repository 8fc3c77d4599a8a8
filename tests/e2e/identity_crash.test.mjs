// Identity under kill -9: clients that resend every unacknowledged batch byte for byte, random
// SIGKILLs while merges are in flight, then exact counts, whole identity graphs (every group's
// devices, user id and email read one profile that lists them all) and `ecrm check` on the data
// dir. ECRM_E2E_KILLS sets the number of kills (default 6; the run used 20) and
// ECRM_E2E_GROUPS the number of people (default 1,500); bench/crash/soak.sh runs 100 kills.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from './lib/prng.mjs';
import { ECRM_BIN, randomId, startServer } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.cleanup(); });

const RUN = randomId('c');
const GROUPS = Number(process.env.ECRM_E2E_GROUPS || 1500);
const KILLS = Number(process.env.ECRM_E2E_KILLS || 6);
const SEED = Number(process.env.ECRM_E2E_SEED || (Date.now() & 0x7fffffff));
const rand = mulberry32(SEED);

// Each group is one person: two devices, a user id and an email; six events that merge them.
function groupEvents(g) {
  const a = `${RUN}-a${g}`, b = `${RUN}-b${g}`, u = `${RUN}-u${g}`;
  const t = (s) => new Date(Date.UTC(2026, 10, 1, 10, 0, s)).toISOString();
  const id = (n) => `${RUN}-g${g}-${n}`;
  return [
    { type: 'track', event: 'Viewed', anonymousId: a, messageId: id(0), timestamp: t(0) },
    { type: 'track', event: 'Viewed', anonymousId: b, messageId: id(1), timestamp: t(1) },
    { type: 'identify', anonymousId: a, userId: u, traits: { email: `${u}@example.com` }, messageId: id(2), timestamp: t(2) },
    { type: 'track', event: 'Order Completed', userId: u, properties: { revenue: 10 }, messageId: id(3), timestamp: t(3) },
    { type: 'identify', anonymousId: b, userId: u, messageId: id(4), timestamp: t(4) },
    { type: 'page', anonymousId: b, messageId: id(5), timestamp: t(5) },
  ];
}

test(`merges survive ${KILLS} kill -9s with resending clients`, { timeout: Math.max(300_000, KILLS * 15_000) }, async (t) => {
  await srv.guard(async () => {
    // Batches of 10 events, taken from the groups' events shuffled together.
    const events = [];
    for (let g = 0; g < GROUPS; g++) events.push(...groupEvents(g));
    for (let i = events.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [events[i], events[j]] = [events[j], events[i]];
    }
    const bodies = [];
    for (let i = 0; i < events.length; i += 10) {
      bodies.push(JSON.stringify({ batch: events.slice(i, i + 10), sentAt: new Date().toISOString() }));
    }
    let next = 0;
    let down = false;
    let resent = 0;
    const sender = async () => {
      for (;;) {
        const i = next++;
        if (i >= bodies.length) return;
        for (;;) {  // the same bytes until acknowledged
          if (down) { await sleep(20); continue; }
          try {
            const res = await srv.collect('/v1/batch', bodies[i], { timeoutMs: 10_000 });
            if (res.status === 200) break;
          } catch { /* killed mid-request */ }
          resent++;
          await sleep(10);
        }
      }
    };
    let kills = 0;
    const killer = async () => {
      for (let k = 0; k < KILLS; k++) {
        await sleep(60 + Math.floor(rand() * 200));
        if (next >= bodies.length) break;
        down = true;
        await srv.kill9();
        kills++;
        await srv.restart();
        down = false;
      }
    };
    await Promise.all([sender(), sender(), sender(), sender(), killer()]);
    t.diagnostic(`${bodies.length} batches, ${kills} kill -9s, ${resent} resent (seed ${SEED})`);

    // Every group is one whole profile with exactly its six events.
    const wrong = [];
    for (let g = 0; g < GROUPS; g++) {
      const a = `${RUN}-a${g}`, b = `${RUN}-b${g}`, u = `${RUN}-u${g}`;
      const res = await srv.getProfileRes(`user_id:${u}`);
      if (res.status !== 200) { wrong.push(`${u}: ${res.status}`); continue; }
      const p = res.json;
      const ids = p.identities || {};
      const has = (type, v) => (ids[type] || []).includes(v);
      if (p.stats.events !== 6 || p.stats.orders !== 1 || !has('anonymous_id', a) || !has('anonymous_id', b) ||
          !has('user_id', u) || !has('email', `${u}@example.com`)) {
        wrong.push(`${u}: events ${p.stats.events}, identities ${JSON.stringify(ids)}`);
        continue;
      }
      for (const other of [`anonymous_id:${a}`, `anonymous_id:${b}`, `email:${u}@example.com`]) {
        const r = await srv.getProfileRes(other);
        if (r.status !== 200 || r.json.id !== p.id) wrong.push(`${other}: ${r.status} ${r.json?.id} not ${p.id}`);
      }
    }
    assert.deepEqual(wrong, [], `groups not whole (seed ${SEED})`);

    // The operator's check on the stopped data dir.
    await srv.stop();
    let out = '';
    try {
      out = execFileSync(ECRM_BIN, ['check', '--data-dir', srv.dataDir], { encoding: 'utf8' });
    } catch (err) {
      assert.fail(`ecrm check found violations (seed ${SEED}):\n${err.stdout}${err.stderr}`);
    }
    assert.match(out, /: 0 violations/);
    await srv.restart();
  })();
});
