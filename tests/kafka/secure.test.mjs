// Kafka the way production runs it: ecrm against the broker's SASL_SSL listener (TLS with a CA
// the test broker made, scripts/kafka.sh), with SASL PLAIN (as Confluent Cloud) and SCRAM-SHA-512
// (as MSK and Aiven). Consume, produce, dead letters, the changelog and the rules topic all go
// through it; a wrong password and an untrusted certificate give a clear error, a not-ready
// instance and a metric, and never show the secret.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { EcrmServer, ECRM_BIN, randomId, metricValue } from '../e2e/lib/server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const KAFKA_SH = join(here, '..', '..', 'scripts', 'kafka.sh');
const KAFKA_DIR = process.env.KAFKA_DIR;
const BROKERS = process.env.KAFKA_BROKERS;  // the plaintext listener, for the test's own tools
assert.ok(KAFKA_DIR && BROKERS, 'KAFKA_DIR and KAFKA_BROKERS must be set (tests/kafka/run.sh)');
const secure = Object.fromEntries(readFileSync(join(KAFKA_DIR, 'secure.env'), 'utf8').trim()
  .split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

const run = randomId('s');
const work = mkdtempSync(join(tmpdir(), 'ecrm-secure-'));
const servers = [];
after(async () => {
  for (const s of servers) await s.cleanup();
  rmSync(work, { recursive: true, force: true });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function kafkaSh(...args) {
  const r = spawnSync('bash', [KAFKA_SH, ...args, '--dir', KAFKA_DIR], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kafka.sh ${args.join(' ')} failed: ${r.stderr}`);
}
function secretFile(name, content) {
  const path = join(work, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}
function securityArgs(mechanism, user, passwordFile, ca = secure.KAFKA_CA) {
  return ['--kafka-property', 'security.protocol=SASL_SSL',
          '--kafka-property', `sasl.mechanism=${mechanism}`,
          '--kafka-property', `sasl.username=${user}`,
          '--kafka-property-file', `sasl.password=${passwordFile}`,
          '--kafka-property', `ssl.ca.location=${ca}`];
}

for (const mechanism of ['PLAIN', 'SCRAM-SHA-512']) {
  test(`kafka over SASL_SSL with ${mechanism}: events, dead letters, changelog and rules`, async () => {
    const tag = `${mechanism.toLowerCase().replace(/[^a-z0-9]/g, '')}-${run}`;
    const topic = `sec-${tag}`, dlq = `sec-dlq-${tag}`, group = `g-sec-${tag}`;
    kafkaSh('create-topic', topic, '4');
    const plain = mechanism === 'PLAIN';
    const password = plain ? secure.KAFKA_PLAIN_PASSWORD : secure.KAFKA_SCRAM_PASSWORD;
    const passwordFile = secretFile(`pw-${tag}`, `${password}\n`);
    let extraArgs = ['--kafka-topic', topic, '--kafka-dlq-topic', dlq, '--kafka-group', group];
    if (plain) {
      // The YAML form, as the Helm chart's ConfigMap writes it.
      const config = secretFile(`ecrm-${tag}.yaml`, [
        `kafka_brokers: ${secure.KAFKA_SECURE_BROKERS}`,
        'kafka_properties:',
        '  security.protocol: SASL_SSL',
        '  sasl.mechanism: PLAIN',
        `  sasl.username: ${secure.KAFKA_PLAIN_USER}`,
        `  ssl.ca.location: ${secure.KAFKA_CA}`,
        'kafka_property_files:',
        `  sasl.password: ${passwordFile}`, ''].join('\n'));
      extraArgs.push('--config', config);
    } else {
      extraArgs.push('--kafka-brokers', secure.KAFKA_SECURE_BROKERS,
                     ...securityArgs(mechanism, secure.KAFKA_SCRAM_USER, passwordFile));
    }
    const srv = new EcrmServer({ startupTimeoutMs: 60_000, extraArgs });
    servers.push(srv);
    await srv.guard(async () => {
      await srv.start();
      // The collector produces over SASL_SSL; the consumer reads it back into profiles.
      const batch = [];
      for (let i = 0; i < 30; i++) {
        batch.push({ type: 'track', event: 'Clicked', anonymousId: `sv-${tag}-${i % 3}`, messageId: `${tag}-${i}` });
      }
      const res = await srv.collect('/v1/batch', { batch });
      assert.equal(res.status, 200, res.text);
      // A poison message (produced on the plaintext listener) is dead-lettered over SASL_SSL.
      const kcat = spawnSync('kcat', ['-P', '-b', BROKERS, '-t', topic, '-K:'], { input: `bad-${tag}:not json\n` });
      assert.equal(kcat.status, 0);
      const deadline = Date.now() + 60_000;
      for (let v = 0; v < 3; v++) {
        for (;;) {
          const p = await srv.getProfileRes(`anonymous_id:sv-${tag}-${v}`);
          if (p.status === 200 && p.json.stats.events === 10) break;
          if (Date.now() > deadline) assert.fail(`visitor ${v}: ${p.status} ${p.text}`);
          await sleep(250);
        }
      }
      let letters = '';
      for (let i = 0; i < 40 && !letters.includes(`bad-${tag}`); i++) {
        letters = spawnSync('kcat', ['-C', '-b', BROKERS, '-t', dlq, '-e', '-f', '%k|%h\n'], { encoding: 'utf8' }).stdout || '';
        if (!letters.includes(`bad-${tag}`)) await sleep(500);
      }
      assert.match(letters, new RegExp(`bad-${tag}\\|.*ecrm-error-code=invalid_json`));
      // The state went to the changelog in transactions.
      const changelog = spawnSync('kcat', ['-C', '-b', BROKERS, '-t', `${group}-changelog`, '-e', '-c', '1',
                                           '-X', 'isolation.level=read_committed', '-f', '%k\n'], { encoding: 'utf8' });
      assert.equal(changelog.status, 0, changelog.stderr);
      assert.ok(changelog.stdout.length > 0, 'the changelog has records');
      // A rule push goes through the rules topic and comes back as the active version.
      const auth = { Authorization: `Bearer ${srv.adminToken}`, 'Content-Type': 'application/json' };
      const set = { rules: [{ id: 'seg', when: 'true', then: [{ add_segment: 'secure' }] }] };
      const pushed = await srv.request('PUT', '/v1/rules', { body: JSON.stringify(set), headers: auth });
      assert.equal(pushed.status, 200, pushed.text);
      const active = JSON.parse((await srv.request('GET', '/v1/rules', { headers: auth })).text);
      assert.equal(active.version, JSON.parse(pushed.text).version);
      const metrics = await srv.metrics();
      assert.equal(metricValue(metrics, 'ecrm_kafka_errors_total', { kind: 'authentication' }), 0);
      assert.equal(metricValue(metrics, 'ecrm_ready'), 1);
      assert.ok(!srv.logText().includes(password), 'the password is never logged');
    })();
  });
}

// Starts ecrm with the given security arguments and expects it to stay up, not ready, with `kind`
// counted and named in /readyz; SIGTERM then stops it at once.
async function expectRefused(name, args, kind, secret) {
  const dataDir = join(work, name);
  const child = spawn(ECRM_BIN, ['serve', '--data-dir', dataDir, '--http-addr', '127.0.0.1:0',
                                 '--write-key', 'sk_sec', '--admin-token', 'at_sec',
                                 '--kafka-brokers', secure.KAFKA_SECURE_BROKERS,
                                 '--kafka-topic', `sec-refused-${run}`, '--kafka-group', `g-${name}-${run}`, ...args]);
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  try {
    const addrFile = join(dataDir, 'ecrm.addr');
    const deadline = Date.now() + 40_000;
    let body = '', status = 0;
    for (;;) {
      if (existsSync(addrFile)) {
        const base = `http://${readFileSync(addrFile, 'utf8').trim()}`;
        const ready = await fetch(`${base}/readyz`).catch(() => null);
        if (ready) {
          status = ready.status;
          body = await ready.text();
          const metrics = await (await fetch(`${base}/metrics`)).text();
          if (body.includes(kind) && metricValue(metrics, 'ecrm_kafka_errors_total', { kind }) > 0) {
            assert.equal((await fetch(`${base}/healthz`)).status, 200, 'alive while waiting');
            break;
          }
        }
      }
      if (child.exitCode !== null) assert.fail(`ecrm exited (${child.exitCode}) instead of waiting:\n${log}`);
      if (Date.now() > deadline) assert.fail(`${name}: /readyz ${status} ${body}\n${log}`);
      await sleep(500);
    }
    assert.equal(status, 503);
    assert.match(log, new RegExp(kind), 'the log names the reason');
    if (secret) assert.ok(!log.includes(secret) && !body.includes(secret), 'the secret is never shown');
    child.kill('SIGTERM');
    const end = await Promise.race([exited, sleep(10_000).then(() => null)]);
    assert.deepEqual(end, { code: 0, signal: null }, 'SIGTERM while waiting stops it cleanly');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

test('kafka over SASL_SSL: a wrong password leaves the instance up, not ready, counted', async () => {
  kafkaSh('create-topic', `sec-refused-${run}`, '1');
  const wrong = `wrong-${randomId('pw')}`;
  await expectRefused('wrong-password',
                      securityArgs('SCRAM-SHA-512', secure.KAFKA_SCRAM_USER, secretFile('wrong', wrong)),
                      'authentication', wrong);
});

test('kafka over SASL_SSL: a certificate from an untrusted CA is refused, not ready, counted', async () => {
  const other = join(work, 'other-ca.crt');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                                     '-subj', '/CN=not the broker CA', '-keyout', join(work, 'other-ca.key'), '-out', other]);
  assert.equal(made.status, 0, String(made.stderr));
  await expectRefused('untrusted-ca',
                      securityArgs('PLAIN', secure.KAFKA_PLAIN_USER, secretFile('plain', secure.KAFKA_PLAIN_PASSWORD), other),
                      'ssl');
});

test('a rejected Kafka property names the key, never the value', () => {
  const secret = `s3cr3t-${randomId('v')}`;
  for (const [arg, want] of [[`security.protocol=${secret}`, /security\.protocol: librdkafka refuses the value/],
                             [`no.such.property=${secret}`, /no\.such\.property: no such librdkafka configuration property/],
                             [`group.id=${secret}`, /group\.id is set by ecrm itself/]]) {
    const r = spawnSync(ECRM_BIN, ['serve', '--kafka-brokers', '127.0.0.1:1', '--kafka-property', arg], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, want);
    assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), `the value is not shown: ${r.stderr}`);
  }
});
