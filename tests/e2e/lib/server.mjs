// Test helper: runs a real `ecrm serve` process on a fresh temp data dir and
// a free loopback port, and offers small HTTP helpers for the e2e tests.
//
//   const srv = await startServer();      // spawns, waits for ecrm.addr + /readyz
//   after(() => srv.cleanup());           // always kill the child
//   test('x', srv.guard(async () => {})); // prints server logs if the test fails
//
// The binary comes from $ECRM_BIN (run.sh sets it), default ../../../build/ecrm.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';

const here = dirname(fileURLToPath(import.meta.url));
export const ECRM_BIN = resolve(process.env.ECRM_BIN || join(here, '..', '..', '..', 'build', 'ecrm'));

const STARTUP_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_LOG_BYTES = 256 * 1024;

// Every live child, so that nothing outlives the test process even on a crash.
const liveChildren = new Set();
function killAllChildren() {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAllChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllChildren();
    process.kill(process.pid, sig);
  });
}

export function randomId(prefix = '') {
  return prefix + randomBytes(6).toString('hex');
}

export function basicAuth(key) {
  return 'Basic ' + Buffer.from(`${key}:`).toString('base64');
}

function waitForExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolvePromise, reject) => {
    const timer = timeoutMs
      ? setTimeout(() => reject(new Error(`ecrm (pid ${child.pid}) did not exit within ${timeoutMs} ms`)), timeoutMs)
      : null;
    child.once('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolvePromise({ code, signal });
    });
  });
}

export class EcrmServer {
  constructor(opts = {}) {
    this.bin = opts.bin || ECRM_BIN;
    this.dataDir = opts.dataDir || mkdtempSync(join(tmpdir(), 'ecrm-e2e-'));
    this.ownsDataDir = !opts.dataDir;
    this.writeKey = opts.writeKey || randomId('wk_');
    this.adminToken = opts.adminToken || randomId('at_');
    this.readKey = opts.readKey || randomId('rk_');
    this.workers = opts.workers ?? 2;
    this.extraArgs = opts.extraArgs || [];
    this.httpAddr = opts.httpAddr || '127.0.0.1:0';  // a fixed port keeps the address across restarts
    this.startupTimeoutMs = opts.startupTimeoutMs ?? STARTUP_TIMEOUT_MS;
    this.child = null;
    this.addr = null;
    this.baseUrl = null;
    this.logs = [];
    this.logBytes = 0;
    this.generation = 0;
  }

  get port() {
    return this.addr ? Number(this.addr.split(':').pop()) : null;
  }

  get running() {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  _log(chunk) {
    const s = chunk.toString();
    this.logs.push(s);
    this.logBytes += s.length;
    while (this.logBytes > MAX_LOG_BYTES && this.logs.length > 1) {
      this.logBytes -= this.logs.shift().length;
    }
  }

  /** Server output collected so far (stdout and stderr of every generation). */
  logText() {
    return this.logs.join('');
  }

  dumpLogs(reason = 'test failed') {
    process.stderr.write(`\n----- ecrm server log (${reason}; data dir ${this.dataDir}) -----\n`);
    process.stderr.write(this.logText());
    process.stderr.write('\n----- end of ecrm server log -----\n');
  }

  /** Wraps a test body: on failure the server's log goes to the test output. */
  guard(fn) {
    return async (...args) => {
      try {
        return await fn(...args);
      } catch (err) {
        this.dumpLogs();
        throw err;
      }
    };
  }

  async start() {
    if (this.running) throw new Error('ecrm is already running');
    if (!existsSync(this.bin)) {
      throw new Error(`ecrm binary not found at ${this.bin} (set ECRM_BIN)`);
    }
    const addrFile = join(this.dataDir, 'ecrm.addr');
    // A stale address file from a previous generation must not be mistaken for the new one.
    try { unlinkSync(addrFile); } catch { /* none */ }

    this.generation += 1;
    const args = [
      'serve',
      '--http-addr', this.httpAddr,
      '--data-dir', this.dataDir,
      '--write-key', this.writeKey,
      '--admin-token', this.adminToken,
      '--read-key', this.readKey,
      '--workers', String(this.workers),
      ...this.extraArgs,
    ];
    this._log(`\n[e2e] generation ${this.generation}: ${this.bin} ${args.join(' ')}\n`);
    const child = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    child.stdout.on('data', (c) => this._log(c));
    child.stderr.on('data', (c) => this._log(c));
    let spawnError = null;
    child.on('error', (e) => { spawnError = e; });
    child.on('exit', (code, signal) => {
      liveChildren.delete(child);
      this._log(`[e2e] generation exited: code=${code} signal=${signal}\n`);
    });

    const deadline = Date.now() + this.startupTimeoutMs;
    const fail = (msg) => {
      const err = new Error(`${msg}\n--- ecrm log ---\n${this.logText()}`);
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      return err;
    };

    // 1. wait for DIR/ecrm.addr = "127.0.0.1:PORT"
    let addr = null;
    while (!addr) {
      if (spawnError) throw fail(`could not spawn ecrm: ${spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw fail(`ecrm exited during startup (code ${child.exitCode}, signal ${child.signalCode})`);
      }
      if (Date.now() > deadline) throw fail(`timed out waiting for ${addrFile}`);
      try {
        const text = readFileSync(addrFile, 'utf8').trim();
        if (/^127\.0\.0\.1:\d{1,5}$/.test(text) && !text.endsWith(':0')) addr = text;
      } catch { /* not yet */ }
      if (!addr) await sleep(25);
    }
    this.addr = addr;
    this.baseUrl = `http://${addr}`;

    // 2. wait for GET /readyz == 200
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw fail(`ecrm exited before becoming ready (code ${child.exitCode}, signal ${child.signalCode})`);
      }
      if (Date.now() > deadline) throw fail(`timed out waiting for GET ${this.baseUrl}/readyz to answer 200`);
      try {
        const res = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch { /* not yet */ }
      await sleep(50);
    }
    return this;
  }

  /** Graceful stop: SIGTERM and wait (SIGKILL after 20 s, which fails). */
  async stop() {
    const child = this.child;
    if (!child) return null;
    if (!this.running) return { code: child.exitCode, signal: child.signalCode };
    child.kill('SIGTERM');
    try {
      return await waitForExit(child, 20_000);
    } catch (err) {
      child.kill('SIGKILL');
      await waitForExit(child, 0);
      throw err;
    }
  }

  /** Abrupt stop: SIGKILL and wait. */
  async kill9() {
    const child = this.child;
    if (!child) return null;
    if (this.running) child.kill('SIGKILL');
    return waitForExit(child, 0);
  }

  /** Same data dir, same keys, new process (and a new port). */
  async restart() {
    if (this.running) await this.stop();
    this.addr = null;
    this.baseUrl = null;
    return this.start();
  }

  /** For `after` hooks: kill the child, remove the temp data dir. */
  async cleanup() {
    try {
      await this.kill9();
    } finally {
      if (this.ownsDataDir && !process.env.ECRM_E2E_KEEP_DATA) {
        try { rmSync(this.dataDir, { recursive: true, force: true }); } catch { /* ignore */ }
      }
    }
  }

  url(path) {
    if (!this.baseUrl) throw new Error('ecrm is not running');
    return this.baseUrl + path;
  }

  /**
   * Raw HTTP request. Returns {status, headers, text, json} (json is undefined
   * if the body does not parse). `body`: object → JSON, string/Buffer → as is.
   */
  async request(method, path, { body, headers = {}, gzip = false, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const h = { ...headers };
    let payload = body;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body) && !(body instanceof Uint8Array)) {
      payload = JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    }
    if (gzip) {
      payload = gzipSync(Buffer.from(payload));
      h['Content-Encoding'] = 'gzip';
    }
    const res = await fetch(this.url(path), {
      method,
      headers: h,
      body: payload,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
  }

  /** POST to the collector with the write key as HTTP Basic (unless auth: false / a string). */
  async collect(path, body, { auth = true, headers = {}, gzip = false, timeoutMs } = {}) {
    const h = { ...headers };
    if (auth === true) h.Authorization = basicAuth(this.writeKey);
    else if (typeof auth === 'string') h.Authorization = auth;
    return this.request('POST', path, { body, headers: h, gzip, timeoutMs });
  }

  async getProfileRes(id, { token = this.adminToken } = {}) {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    return this.request('GET', `/v1/profiles/${encodeURIComponent(id)}`, { headers });
  }

  /** GET /v1/profiles/{id} with the admin token; throws unless 200. */
  async getProfile(id) {
    const res = await this.getProfileRes(id);
    if (res.status !== 200) {
      throw new Error(`GET /v1/profiles/${encodeURIComponent(id)} -> ${res.status} ${res.text}`);
    }
    return res.json;
  }

  async personalizeRes(id, { token = this.readKey } = {}) {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    return this.request('GET', `/v1/personalize/${encodeURIComponent(id)}`, { headers });
  }

  /** GET /v1/personalize/{id} with the read key; throws unless 200. */
  async personalize(id) {
    const res = await this.personalizeRes(id);
    if (res.status !== 200) {
      throw new Error(`GET /v1/personalize/${encodeURIComponent(id)} -> ${res.status} ${res.text}`);
    }
    return res.json;
  }

  /** GET /metrics text; throws unless 200. */
  async metrics() {
    const res = await this.request('GET', '/metrics');
    if (res.status !== 200) throw new Error(`GET /metrics -> ${res.status} ${res.text}`);
    return res.text;
  }
}

/** New server on a fresh temp data dir; if it fails to start, it is cleaned up. */
export async function startServer(opts) {
  const srv = new EcrmServer(opts);
  try {
    await srv.start();
  } catch (err) {
    await srv.cleanup().catch(() => {});
    throw err;
  }
  return srv;
}

// ---------------------------------------------------------------------------
// Prometheus text format parsing

function unescapeLabel(v) {
  return v.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
}

function parseValue(v) {
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  return Number(v);
}

/** All samples of the text: [{name, labels:{}, value}]. */
export function parseMetrics(text) {
  const samples = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${JSON.stringify(rawLine)}`);
    const labels = {};
    if (m[3]) {
      const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
      let lm;
      let consumed = 0;
      while ((lm = re.exec(m[3])) !== null) {
        labels[lm[1]] = unescapeLabel(lm[2]);
        consumed = re.lastIndex;
      }
      if (m[3].slice(consumed).trim() !== '') {
        throw new Error(`unparsable labels in metrics line: ${JSON.stringify(rawLine)}`);
      }
    }
    samples.push({ name: m[1], labels, value: parseValue(m[4]) });
  }
  return samples;
}

function matches(sample, name, labels) {
  if (sample.name !== name) return false;
  return Object.entries(labels).every(([k, v]) => sample.labels[k] === String(v));
}

/**
 * The value of the one sample `name` whose labels include `labels` (a subset
 * match). 0 when no sample matches (a counter that never moved may be
 * absent); throws when several match.
 */
export function metricValue(text, name, labels = {}) {
  const found = parseMetrics(text).filter((s) => matches(s, name, labels));
  if (found.length > 1) {
    throw new Error(`metricValue: ${found.length} samples match ${name} ${JSON.stringify(labels)}; give more labels`);
  }
  return found.length ? found[0].value : 0;
}

/** Sum of every sample `name` whose labels include `labels`. */
export function metricSum(text, name, labels = {}) {
  return parseMetrics(text).filter((s) => matches(s, name, labels)).reduce((a, s) => a + s.value, 0);
}

/** Whether any sample or # TYPE line of that name exists. */
export function hasMetric(text, name) {
  return parseMetrics(text).some((s) => s.name === name)
    || new RegExp(`^# TYPE ${name} `, 'm').test(text);
}
