"""EcrmError: formatting of validation details and parsing of error answers."""

from ecrm_client import EcrmError
from ecrm_client.errors import error_from_response, format_detail


def test_detail_with_everything():
    d = {"rule": "x", "field": "when", "line": 1, "column": 5, "message": "unexpected token"}
    assert format_detail(d) == "rule 'x' when 1:5: unexpected token"


def test_detail_with_parts_missing():
    assert format_detail({"rule": "x", "message": "duplicate id"}) == "rule 'x': duplicate id"
    assert format_detail({"field": "then", "message": "bad"}) == "then: bad"
    assert format_detail({"rule": "r", "line": 2, "message": "m"}) == "rule 'r' 2: m"
    assert format_detail({"message": "only this"}) == "only this"


def test_str_lists_details_one_per_line():
    err = EcrmError(
        400,
        "invalid_rule_set",
        "2 problems",
        [
            {"rule": "a", "field": "when", "line": 1, "column": 5, "message": "m1"},
            {"rule": "b", "field": "then", "message": "m2"},
        ],
    )
    assert str(err) == (
        "invalid_rule_set (HTTP 400): 2 problems\n"
        "  rule 'a' when 1:5: m1\n"
        "  rule 'b' then: m2"
    )
    assert err.status == 400 and err.code == "invalid_rule_set" and len(err.details) == 2


def test_str_without_answer():
    assert str(EcrmError(None, "unreachable", "refused")) == "unreachable (no answer): refused"


def test_parse_ecrm_error_body():
    body = (
        b'{"error":{"code":"invalid_rule_set","message":"bad","details":'
        b'[{"rule":"r","field":"when","line":1,"column":3,"message":"x"}]}}'
    )
    err = error_from_response(400, body)
    assert (err.status, err.code, err.message) == (400, "invalid_rule_set", "bad")
    assert err.details == [{"rule": "r", "field": "when", "line": 1, "column": 3, "message": "x"}]


def test_parse_non_json_body():
    err = error_from_response(502, b"<html>bad gateway</html>")
    assert (err.status, err.code, err.message) == (502, "http_502", "<html>bad gateway</html>")
    assert error_from_response(404, b"").message == "HTTP 404"
