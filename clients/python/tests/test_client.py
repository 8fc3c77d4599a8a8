"""Client plumbing against a stub HTTP server (no ecrm needed): what is sent, how answers and
errors are read."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ecrm_client import Client, EcrmError, Rule, RuleSet

RULE = {"id": "r", "when": "true", "then": [{"add_segment": "x"}]}


class Stub:
    """Answers every request with the next queued (status, body) and records the requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[tuple[int, bytes]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                stub.requests.append({
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(raw) if raw else None,
                })
                status, body = stub.answers.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = _any

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status: int, body: object) -> None:
        self.answers.append((status, body if isinstance(body, bytes) else json.dumps(body).encode()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def test_push_rules_sends_the_normalised_set_with_the_token(stub):
    stub.answer(200, {"version": 7})
    client = Client(stub.url + "/", "at_secret")
    assert client.push_rules(RuleSet([Rule("r", "true", [{"add_segment": "x"}])])) == 7
    req = stub.requests[0]
    assert (req["method"], req["path"]) == ("PUT", "/v1/rules")
    assert req["headers"]["Authorization"] == "Bearer at_secret"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["body"] == {"rules": [RULE]}


def test_each_call_uses_its_endpoint(stub):
    for answer in ({"valid": True, "rules": 1}, {"version": 0, "rules": []}, {"version": 9},
                   {"version": None, "results": [], "profile": {}}, {"id": "p"}):
        stub.answer(200, answer)
    client = Client(stub.url, "t")
    assert client.validate([RULE]) is None
    assert client.get_rules() == {"version": 0, "rules": []}
    assert client.rollback(3) == 9
    client.dry_run({"type": "track", "event": "E"}, profile={"traits": {"a": 1.5}}, profile_id="user_id:U1")
    client.get_profile("email:ada+1@example.com")
    got = [(r["method"], r["path"], r["body"]) for r in stub.requests]
    assert got == [
        ("POST", "/v1/rules/validate", {"rules": [RULE]}),
        ("GET", "/v1/rules", None),
        ("POST", "/v1/rules/rollback", {"version": 3}),
        ("POST", "/v1/rules/test", {"event": {"type": "track", "event": "E"},
                                    "profile": {"traits": {"a": 1.5}}, "profile_id": "user_id:U1"}),
        ("GET", "/v1/profiles/email:ada%2B1%40example.com", None),
    ]


def test_dry_run_sends_rules_only_when_given(stub):
    stub.answer(200, {"version": 1, "results": [], "profile": {}})
    stub.answer(200, {"version": None, "results": [], "profile": {}})
    client = Client(stub.url, "t")
    client.dry_run({"type": "page"})
    client.dry_run({"type": "page"}, rule_set=[RULE])
    assert stub.requests[0]["body"] == {"event": {"type": "page"}}
    assert stub.requests[1]["body"] == {"event": {"type": "page"}, "rules": {"rules": [RULE]}}


def test_validation_error_is_raised_with_details(stub):
    stub.answer(400, {"error": {"code": "invalid_rule_set", "message": "1 problem", "details": [
        {"rule": "r", "field": "when", "line": 1, "column": 5, "message": "syntax error"}]}})
    with pytest.raises(EcrmError) as info:
        Client(stub.url, "t").validate([RULE])
    assert info.value.status == 400 and info.value.code == "invalid_rule_set"
    assert str(info.value) == "invalid_rule_set (HTTP 400): 1 problem\n  rule 'r' when 1:5: syntax error"


def test_401_and_404(stub):
    stub.answer(401, {"error": {"code": "unauthorized", "message": "bad token"}})
    stub.answer(404, {"error": {"code": "not_found", "message": "no such version"}})
    client = Client(stub.url, "wrong")
    with pytest.raises(EcrmError) as info:
        client.get_rules()
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    with pytest.raises(EcrmError) as info:
        client.rollback(99)
    assert (info.value.status, info.value.code, info.value.message) == (404, "not_found", "no such version")


def test_non_json_answer(stub):
    stub.answer(200, b"<html>")
    with pytest.raises(EcrmError) as info:
        Client(stub.url, "t").get_rules()
    assert info.value.code == "bad_response"


def test_unreachable_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens there
    with pytest.raises(EcrmError) as info:
        Client(f"http://127.0.0.1:{port}", "t", timeout=2).get_rules()
    assert info.value.status is None and info.value.code == "unreachable"


def test_argument_checks():
    client = Client("http://127.0.0.1:1", "t")
    with pytest.raises(ValueError):
        Client("127.0.0.1:8080", "t")
    with pytest.raises(ValueError):
        client.get_profile("no-type")
    with pytest.raises(TypeError):
        client.rollback("3")
    with pytest.raises(ValueError, match="cannot send"):
        client.dry_run({"type": "track", "properties": {"x": float("nan")}})
