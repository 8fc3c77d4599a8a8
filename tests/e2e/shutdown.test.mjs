// SIGTERM under load, as Kubernetes stops a pod: /readyz stops answering 200 at once, every request
// answered 200 before the stop is in the profiles after a restart (none lost, none counted twice),
// and the process exits 0 well inside the chart's 60 s grace period. The time is printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, randomId } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('SIGTERM under load: not ready at once, nothing acknowledged lost, a quick clean exit', async () => {
  const srv = await startServer();
  try {
    const run = randomId('sd');
    const clients = 8, visitors = 40;
    const acked = new Map();  // visitor -> events acknowledged with 200
    const sent = new Map();   // visitor -> events sent (acknowledged or not)
    let stopping = false, seq = 0;
    const client = async (c) => {
      while (!stopping) {
        const batch = [];
        for (let i = 0; i < 100; i++) {
          const v = `${run}-${(seq * 31 + c) % visitors}`;
          batch.push({ type: 'track', event: 'Clicked', anonymousId: v, messageId: `${run}-${c}-${seq++}` });
        }
        for (const e of batch) sent.set(e.anonymousId, (sent.get(e.anonymousId) || 0) + 1);
        const res = await srv.collect('/v1/batch', { batch }).catch(() => null);
        if (res && res.status === 200) {
          for (const e of batch) acked.set(e.anonymousId, (acked.get(e.anonymousId) || 0) + 1);
        } else {
          await sleep(20);
        }
      }
    };
    const loops = Array.from({ length: clients }, (_, c) => client(c));
    await sleep(1500);
    const before = [...acked.values()].reduce((a, b) => a + b, 0);
    assert.ok(before > 1000, `load is flowing (${before} events acknowledged)`);

    const t0 = Date.now();
    const exited = new Promise((r) => srv.child.on('exit', (code, signal) => r({ code, signal, at: Date.now() })));
    srv.child.kill('SIGTERM');
    // Not ready at once: the first probe after the signal gets no 200.
    await sleep(50);
    const probe = await fetch(srv.url('/readyz'), { signal: AbortSignal.timeout(2000) }).catch(() => null);
    assert.ok(!probe || probe.status === 503, `readyz right after SIGTERM: ${probe && probe.status}`);
    const { at, ...exit } = await exited;
    const seconds = (at - t0) / 1000;
    stopping = true;
    await Promise.all(loops);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(seconds < 15, `exit took ${seconds} s`);
    console.log(`shutdown under load (${clients} clients, ${before} events acknowledged before): exit ${seconds.toFixed(2)} s after SIGTERM`);

    srv.child = null;
    await srv.restart();
    for (const [v, n] of acked) {
      const p = await srv.getProfileRes(`anonymous_id:${v}`);
      assert.equal(p.status, 200, `visitor ${v}`);
      assert.ok(p.json.stats.events >= n, `visitor ${v}: ${p.json.stats.events} events, ${n} acknowledged`);
      assert.ok(p.json.stats.events <= sent.get(v), `visitor ${v}: ${p.json.stats.events} events, only ${sent.get(v)} sent`);
    }
  } finally {
    await srv.cleanup();
  }
});
