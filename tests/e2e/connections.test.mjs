// File descriptors and connections: ecrm raises its soft open-file limit to the hard one, fits
// --max-connections to the limit, and with more idle connections than descriptors still answers
// new ones at once (503 too_many_connections) instead of spinning on EMFILE and timing out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ECRM_BIN, metricValue, startServer } from './lib/server.mjs';

// An executable that runs ecrm after `ulimit` arguments (exec: the same pid).
function withUlimit(args) {
  const dir = mkdtempSync(join(tmpdir(), 'ecrm-ulimit-'));
  const path = join(dir, 'ecrm');
  writeFileSync(path, `#!/bin/sh\nulimit ${args} || exit 99\nexec "${ECRM_BIN}" "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

// [soft, hard] open-file limits of a process, from /proc/<pid>/limits.
function fileLimits(pid) {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const [soft, hard] = line.trim().split(/\s+/).slice(3, 5);
  return [soft, hard].map((v) => (v === 'unlimited' ? Infinity : Number(v)));
}

// One request on a new connection; the whole answer as text ('' if none within timeoutMs).
function rawRequest(port, request, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const chunks = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    const timer = setTimeout(() => { socket.destroy(); resolve(Buffer.concat(chunks).toString()); }, timeoutMs);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString()); });
  });
}

function openIdle(port, n) {
  return Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', () => resolve(socket));
  })));
}

test('the soft open-file limit is raised to the hard limit at start', async (t) => {
  const [, hard] = fileLimits(process.pid);
  if (!(hard > 512)) return t.skip(`hard limit ${hard}`);
  const srv = await startServer({ bin: withUlimit('-Sn 512') });
  try {
    const [soft, hardNow] = fileLimits(srv.child.pid);
    assert.equal(soft, hardNow, `soft limit of ecrm: ${soft}, hard ${hardNow}`);
    assert.match(srv.logText(), new RegExp(`open-file limit raised from 512 to ${hardNow}`));
  } finally {
    await srv.cleanup();
  }
});

test('at a 1,024 descriptor limit, 1,200 idle connections do not starve /healthz', async () => {
  const srv = await startServer({ bin: withUlimit('-n 1024') });
  const idle = [];
  try {
    assert.match(srv.logText(), /max_connections lowered from 10000 to 768 to fit the open-file limit of 1024/);
    const port = Number(new URL(srv.baseUrl).port);
    idle.push(...await openIdle(port, 1200));
    await sleep(500);
    const started = Date.now();
    const answer = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 503 /, answer || 'no answer');
    assert.match(answer, /"code":"too_many_connections"/);
    assert.match(answer, /Connection: close/i);
    assert.ok(Date.now() - started < 2000, `answered after ${Date.now() - started} ms`);
    for (const s of idle.splice(0)) s.destroy();
    let healthy = '';
    for (let i = 0; i < 50 && !/^HTTP\/1\.1 200 /.test(healthy); i++) {
      await sleep(100);
      healthy = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    }
    assert.match(healthy, /^HTTP\/1\.1 200 /, healthy);
    const metrics = await srv.metrics();
    assert.ok(metricValue(metrics, 'ecrm_http_connections_refused_total', { reason: 'max_connections' }) >= 400,
      metrics.split('\n').filter((l) => l.startsWith('ecrm_http_connections')).join('\n'));
  } finally {
    for (const s of idle) s.destroy();
    await srv.cleanup();
  }
});
