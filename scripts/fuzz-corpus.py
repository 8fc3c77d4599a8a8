#!/usr/bin/env python3
# Writes the text seeds of the fuzz corpora (tests/fuzz/corpus/: collector bodies, NDJSON imports,
# CEL expressions from tests/rules/, raw HTTP requests). Run from the repository root. The binary
# seeds come from the fuzz_seed_gen tool (tests/fuzz/CMakeLists.txt).
import json, os, hashlib, glob, gzip, zlib, base64
root = 'tests/fuzz/corpus'
def write(d, name, data):
    os.makedirs(f'{root}/{d}', exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(f'{root}/{d}/{name}', 'wb').write(data)

# collector_parser: Segment / RudderStack bodies (batch and single-event shapes).
collector = {
 'segment-batch.json': '{"sentAt":"2026-09-21T14:13:10Z","context":{"campaign":{"source":"s"},"userAgent":"Mozilla/5.0 (iPhone) Mobile"},"batch":[{"type":"identify","anonymousId":"a","userId":"u","traits":{"email":" A@B.c ","n":[1,2,{"x":null}]}},{"type":"track","anonymousId":"a","event":"Order Completed","properties":{"revenue":5.5,"products":[{"product_id":7,"category":"c","price":1e3}]},"timestamp":"2026-09-21T14:13:00.123+02:00"}]}',
 'page.json': '{"type":"page","userId":"u","properties":{"url":"https://x.example/a?b=c","referrer":"https://g.example/"},"messageId":"m1"}',
 'alias-group.json': '{"batch":[{"type":"alias","userId":"u","previousId":"p"},{"type":"group","anonymousId":"a","groupId":"g","traits":{}}],"receivedAt":"2026-09-21T14:13:00Z"}',
 'identify-writekey.json': '{"writeKey":"wk","context":{"userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1","campaign":{"source":"news","medium":"email","name":"spring"},"traits":{"name":"Ada","city":"Oslo"}},"type":"identify","anonymousId":"a","userId":"u","traits":{"name":"Ada","email":"ada@example.com"},"timestamp":"2026-09-21T14:00:00Z"}',
 'track-products.json': '{"type":"track","anonymousId":"a","event":"Product Viewed","properties":{"product_id":"p1","name":"Shoe","category":"shoes","price":99.5},"context":{"page":{"url":"https://shop.example/b","referrer":"https://shop.example/a"},"device":{"type":"mobile"},"os":{"name":"iOS"},"library":{"name":"analytics.js"}},"originalTimestamp":"2026-09-21T14:12:59.5Z","sentAt":"2026-09-21T14:13:00Z"}',
 'rudder-batch.json': '{"batch":[{"type":"track","anonymousId":"r1","event":"Products Searched","properties":{"query":"shoes"},"messageId":"0e1f8a5c-0001","originalTimestamp":"2026-09-21T14:10:00.000Z","sentAt":"2026-09-21T14:10:01.000Z","channel":"web","context":{"library":{"name":"RudderLabs JavaScript SDK","version":"3.0.0"},"traits":{},"locale":"en-US"},"rudderId":"x"},{"type":"screen","userId":"u2","name":"Home","properties":{},"context":{"ecrm":{"user_hash":"00"}}}],"sentAt":"2026-09-21T14:10:01.000Z"}',
 'order.json': '{"type":"track","userId":"u","event":"Order Completed","properties":{"order_id":"o1","total":30,"revenue":25,"currency":"EUR","products":[{"product_id":"p1","price":10,"quantity":2},{"sku":"s2","price":5.5}]}}',
 'duplicate-keys.json': '{"batch":[{"type":"identify","userId":"u","userId":"other","traits":{"plan":"gold","email":"a@x.example"}}]}',
 'rejected-type.json': '{"batch":[{"type":"foo","anonymousId":"a"},{"type":7}]}',
 'numbers.json': '{"type":"track","anonymousId":"a","event":"E","properties":{"n":[1,-2,3.5,true,null,1e308,-0,18446744073709551616]}}',
}
for k, v in collector.items(): write('collector_parser', k, v)

# ndjson_import: profile import bodies.
ndjson = {
 'crm.ndjson': '{"identifiers":{"user_id":"u1","email":"Ada@Example.com"},"traits":{"plan":"gold","ltv":120.5},"channel":"crm","updated_at":"2026-09-20T10:00:00Z"}\n{"identifiers":{"crm_id":"C-1","phone":"+4915112345678"},"traits":{"vip":true},"channel":"call-centre","updated_at":1789900000000}\n',
 'errors.ndjson': '{"identifiers":{"fax":"1"},"channel":"crm"}\n\n{"identifiers":{"user_id":5},"channel":"crm"}\nnot json\n{"identifiers":{"phone":"12"},"channel":"crm"}\r\n{"identifiers":{"user_id":"null"},"channel":"crm"}\n{"identifiers":{"user_id":"u"},"channel":"","traits":[]}\n',
 'shop.ndjson': '{"channel":"shop","identifiers":{"anonymous_id":"a1"},"traits":{"cart":{"items":[{"sku":"s","n":2}]},"name":"\\u00e9"},"updated_at":"2026-09-21T14:13:20.5+02:00"}',
}
for k, v in ndjson.items(): write('ndjson_import', k, v)

# cel: the conformance expressions and the rule expressions of the scenarios.
exprs = set([
 "event.type == 'track' && event.properties.category == 'shoes'",
 "sigmoid(0.4 * double(profile.stats.page_views) - 2.0)",
 "has(profile.traits.plan) && profile.traits.plan in ['gold', 'platinum']",
 "now - timestamp(profile.traits.signup) > duration('720h')",
 "event.properties.products.exists(p, p.price > 100.0)",
 "x < 3.5 ? (y < 1.0 ? 0.2 : 0.7) : 0.9",
 "x.l.map(i, i * 2).filter(j, j > 2).size() == min(x.l)",
])
for f in sorted(glob.glob('tests/rules/cel-conformance/*.json')):
    for t in json.load(open(f))['tests']: exprs.add(t['expr'])
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ('when', 'value', 'expr', 'if') and isinstance(v, str): exprs.add(v)
            walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
for f in sorted(glob.glob('tests/rules/scenarios/*.json')): walk(json.load(open(f)))
# A fixed sample (by hash) keeps the corpus small; libFuzzer grows it from there.
named = sorted((hashlib.sha1(e.encode()).hexdigest()[:16], e) for e in exprs)
for name, e in named[:240]:
    write('cel', name, e)

# http_request: raw HTTP/1.1 requests as a client sends them.
def req(method, target, body=b'', headers=()):
    if isinstance(body, str): body = body.encode()
    h = [f'{method} {target} HTTP/1.1', 'Host: collect.shop.example'] + list(headers)
    if body or method in ('POST', 'PUT'): h.append(f'Content-Length: {len(body)}')
    return ('\r\n'.join(h) + '\r\n\r\n').encode() + body
basic = 'Authorization: Basic ' + base64.b64encode(b'wk:').decode()
browser = 'Authorization: Basic ' + base64.b64encode(b'bk:').decode()
admin = 'Authorization: Bearer admin'
batch = collector['segment-batch.json']
rules = json.dumps(json.load(open('tests/rules/scenarios/example_rule_set.json'))['rules'], separators=(',', ':'))
chunked_body = b'1a\r\n{"anonymousId":"a","type":\r\n' + b'10\r\n"page","x":1}   \r\n0\r\n\r\n'
http = {
 'batch.http': req('POST', '/v1/batch', batch, [basic, 'Content-Type: application/json']),
 'batch-gzip.http': req('POST', '/v1/batch', gzip.compress(batch.encode(), mtime=0), [basic, 'Content-Encoding: gzip']),
 'track-deflate.http': req('POST', '/v1/t', zlib.compress(collector['track-products.json'].encode()), [browser, 'Content-Encoding: deflate', 'Origin: https://shop.example']),
 'page-writekey-body.http': req('POST', '/v1/p', '{"anonymousId":"a1","writeKey":"wk"}', ['Content-Type: text/plain']),
 'identify-query-key.http': req('POST', '/v1/identify?writeKey=wk', collector['identify-writekey.json']),
 'pipelined.http': req('POST', '/v1/track', '{"anonymousId":"a","event":"E"}', ['X-Write-Key: wk']) + req('GET', '/v1/profiles/anonymous_id:a', '', [admin]) + req('GET', '/v1/personalize/anonymous_id:a', '', ['Authorization: Bearer rk']),
 'chunked.http': b'POST /v1/page HTTP/1.1\r\nHost: x\r\n' + basic.encode() + b'\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked_body,
 'profile-email.http': req('GET', '/v1/profiles/email:ada%40example.com', '', [admin]),
 'profile-id.http': req('GET', '/v1/profiles/id:0001-00000000000000aa', '', [admin]),
 'erase.http': req('DELETE', '/v1/profiles/user_id:u1', '', [admin]),
 'import.http': req('POST', '/v1/profiles/import', ndjson['crm.ndjson'], [admin, 'Content-Type: application/x-ndjson']),
 'rules-put.http': req('PUT', '/v1/rules', rules, [admin]),
 'rules-validate.http': req('POST', '/v1/rules/validate', rules, [admin]),
 'rules-test.http': req('POST', '/v1/rules/test', '{"rules":' + json.dumps(json.loads(rules)['rules']) + ',"event":{"type":"track","anonymousId":"a","event":"Product Viewed","properties":{"category":"shoes"}}}', [admin]),
 'rules-get.http': req('GET', '/v1/rules', '', [admin]) + req('POST', '/v1/rules/rollback', '{"version":1}', [admin]),
 'settings.http': req('GET', '/v1/projects/bk/settings', '', ['Origin: https://shop.example']),
 'preflight.http': req('OPTIONS', '/v1/batch', '', ['Origin: https://shop.example', 'Access-Control-Request-Method: POST', 'Access-Control-Request-Headers: content-type,authorization']),
 'metrics-health.http': req('GET', '/metrics') + req('HEAD', '/healthz') + req('GET', '/readyz') + req('GET', '/v1/cluster', '', [admin]),
 'http10.http': b'GET /healthz HTTP/1.0\r\n\r\n',
 'telemetry.http': req('POST', '/v1/m', '{"series":[{"type":"Counter","metric":"analytics_js.invoke","value":1}]}'),
}
for k, v in http.items(): write('http_request', k, v)
