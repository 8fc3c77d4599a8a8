"""The rules API of a real ecrm: push, get, rollback, validate, dry-run (needs ECRM_BINARY)."""

import math
import uuid

import pytest

from ecrm_client import Client, EcrmError, Rule, RuleSet, add_segment
from server_helpers import (
    EXAMPLE_RULE_SET,
    results_by_rule,
    score_actions,
    segment_names,
    shoe_view,
    track,
)

pytestmark = pytest.mark.server

BROKEN_WHEN = "event.type == 'track' &&\n  event.event == "  # the error is on line 2


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_fresh_server_has_no_rules(ecrm_server):
    assert ecrm_server.initial_rules == {"version": 0, "rules": []}


def test_push_get_rollback(client: Client):
    a = RuleSet([Rule("a", "true", [add_segment("seg-a")])])
    b = [{"id": "b1", "when": "event.type == 'page'", "then": [{"add_segment": "seg-b"}]},
         {"id": "b2", "when": "false", "then": [{"remove_segment": "seg-b"}]}]
    v1 = client.push_rules(a)
    v2 = client.push_rules(b)
    assert v2 > v1 >= 1
    active = client.get_rules()
    assert active["version"] == v2
    assert [(r["id"], r["when"]) for r in active["rules"]] == [("b1", "event.type == 'page'"), ("b2", "false")]

    v3 = client.rollback(v1)
    assert v3 > v2
    active = client.get_rules()
    assert active["version"] == v3
    assert [(r["id"], r["when"]) for r in active["rules"]] == [("a", "true")]


def test_rollback_to_unknown_version_is_404(client: Client):
    with pytest.raises(EcrmError) as info:
        client.rollback(10**9)
    assert info.value.status == 404


def test_validate_accepts_and_changes_nothing(client: Client):
    before = client.get_rules()["version"]
    assert client.validate(EXAMPLE_RULE_SET) is None
    assert client.get_rules()["version"] == before


def test_validation_error_has_rule_field_line_and_column(client: Client):
    bad = [{"id": "ok", "when": "true", "then": [{"add_segment": "x"}]},
           {"id": "broken", "when": BROKEN_WHEN, "then": [{"add_segment": "x"}]}]
    before = client.get_rules()["version"]
    with pytest.raises(EcrmError) as info:
        client.validate(bad)
    err = info.value
    assert (err.status, err.code) == (400, "invalid_rule_set")
    assert err.details, str(err)
    detail = err.details[0]
    assert (detail["rule"], detail["field"], detail["line"]) == ("broken", "when", 2), str(err)
    assert isinstance(detail["column"], int) and detail["column"] >= 1, str(err)
    assert detail["message"]
    assert f"rule 'broken' when 2:{detail['column']}: " in str(err)

    with pytest.raises(EcrmError) as pushed:
        client.push_rules(bad)
    assert (pushed.value.status, pushed.value.code) == (400, "invalid_rule_set")
    assert client.get_rules()["version"] == before


def test_wrong_or_missing_token_is_401(ecrm_server):
    for token in ("wrong", ""):
        with pytest.raises(EcrmError) as info:
            Client(ecrm_server.base_url, token).get_rules()
        assert info.value.status == 401
        with pytest.raises(EcrmError) as info:
            Client(ecrm_server.base_url, token).push_rules(EXAMPLE_RULE_SET)
        assert info.value.status == 401


def test_dry_run_of_the_example_rule_set(client: Client):
    before = client.get_rules()
    answer = client.dry_run(
        shoe_view(),
        rule_set=EXAMPLE_RULE_SET,
        profile={"counters": {"shoe_views": 2}, "stats": {"page_views": 3}},
    )
    assert answer["version"] is None  # explicit rules: no stored version
    results = results_by_rule(answer)
    assert [r["rule"] for r in answer["results"]] == ["count-shoe-views", "shoe-lover", "buy-propensity"]
    assert all(r["matched"] for r in answer["results"]), answer
    assert all("error" not in r for r in answer["results"]), answer
    # Rules run in order on the updated profile: the increment makes 3, so shoe-lover matches.
    assert {"add_segment": "shoe-lover"} in results["shoe-lover"]["actions"]
    expected = sigmoid(0.4 * 3.0 - 2.0)
    assert score_actions(results["buy-propensity"])["buy_propensity"] == pytest.approx(expected, abs=1e-12)

    profile = answer["profile"]
    assert profile["counters"]["shoe_views"] == 3
    assert "shoe-lover" in segment_names(profile)
    assert profile["scores"]["buy_propensity"] == pytest.approx(expected, abs=1e-12)
    assert client.get_rules() == before  # nothing stored


def test_dry_run_of_an_event_that_matches_nothing(client: Client):
    event = {"type": "page", "anonymousId": "a2", "name": "Home", "properties": {}}
    answer = client.dry_run(event, rule_set=EXAMPLE_RULE_SET, profile={"stats": {"page_views": 0}})
    results = results_by_rule(answer)
    assert results["count-shoe-views"]["matched"] is False
    assert results["shoe-lover"]["matched"] is False
    assert results["count-shoe-views"].get("actions", []) == []
    assert results["buy-propensity"]["matched"] is True


def test_dry_run_uses_the_active_set_when_none_is_given(client: Client):
    version = client.push_rules(EXAMPLE_RULE_SET)
    answer = client.dry_run(shoe_view(), profile={"stats": {"page_views": 1}})
    assert answer["version"] == version
    assert [r["rule"] for r in answer["results"]] == ["count-shoe-views", "shoe-lover", "buy-propensity"]


def test_dry_run_reports_a_runtime_error_and_goes_on(client: Client):
    rules = [
        {"id": "missing-trait", "when": "double(profile.traits.nope) > 1.0", "then": [{"add_segment": "never"}]},
        {"id": "after", "when": "true", "then": [{"add_segment": "reached"}]},
    ]
    answer = client.dry_run(shoe_view(), rule_set=rules, profile={"traits": {}})
    results = results_by_rule(answer)
    assert results["missing-trait"]["matched"] is False
    assert results["missing-trait"].get("error"), answer
    assert results["after"]["matched"] is True
    assert "reached" in segment_names(answer["profile"])


def test_dry_run_from_a_stored_profile_changes_nothing(ecrm_server, client: Client):
    client.push_rules({"rules": []})
    visitor = "py-" + uuid.uuid4().hex[:8]
    track(ecrm_server.base_url, ecrm_server.write_key, shoe_view(visitor))
    stored = client.get_profile(f"anonymous_id:{visitor}")
    assert not stored.get("counters")

    answer = client.dry_run(shoe_view(visitor), rule_set=EXAMPLE_RULE_SET, profile_id=f"anonymous_id:{visitor}")
    results = results_by_rule(answer)
    assert results["count-shoe-views"]["matched"] is True
    assert results["shoe-lover"]["matched"] is False
    assert answer["profile"]["counters"]["shoe_views"] == 1
    assert client.get_profile(f"anonymous_id:{visitor}").get("counters") == stored.get("counters")


def test_pushed_rules_apply_to_collected_events(ecrm_server, client: Client):
    client.push_rules(EXAMPLE_RULE_SET)
    visitor = "py-" + uuid.uuid4().hex[:8]
    for _ in range(3):
        track(ecrm_server.base_url, ecrm_server.write_key, shoe_view(visitor))
    profile = client.get_profile(f"anonymous_id:{visitor}")
    assert profile["counters"]["shoe_views"] == 3
    assert "shoe-lover" in segment_names(profile)
    assert profile["scores"]["buy_propensity"] == pytest.approx(sigmoid(-2.0), abs=1e-12)


def test_unknown_profile_is_404(client: Client):
    with pytest.raises(EcrmError) as info:
        client.get_profile("anonymous_id:nobody-" + uuid.uuid4().hex)
    assert info.value.status == 404
