"""Rule builders and rule-set normalisation."""

import pytest

from ecrm_client import (
    Rule,
    RuleSet,
    add_segment,
    increment,
    normalize_rule_set,
    offer,
    remove_segment,
    set_score,
    set_trait,
)

SHOES = {"id": "count", "when": "true", "then": [{"increment": {"counter": "shoe_views"}}]}


def test_action_helpers():
    assert add_segment("vip") == {"add_segment": "vip"}
    assert add_segment("vip", ttl="7d") == {"add_segment": {"name": "vip", "ttl": "7d"}}
    assert remove_segment("vip") == {"remove_segment": "vip"}
    assert increment("c") == {"increment": {"counter": "c"}}
    assert increment("c", by=2, window="1h") == {"increment": {"counter": "c", "by": 2, "window": "1h"}}
    assert set_trait("t", "event.properties.x") == {"set_trait": {"name": "t", "value": "event.properties.x"}}
    assert set_score("s", "0.5") == {"set_score": {"name": "s", "value": "0.5"}}
    assert offer("o1", 3) == {"offer": {"id": "o1", "priority": 3}}


def test_rule_to_dict():
    r = Rule("r", "true", [add_segment("x")], once="session")
    assert r.to_dict() == {"id": "r", "when": "true", "then": [{"add_segment": "x"}], "once": "session"}
    assert "once" not in Rule("r", "true").to_dict()


@pytest.mark.parametrize(
    "kwargs",
    [dict(id="", when="true"), dict(id="r", when=" "), dict(id="r", when="true", once="day")],
)
def test_rule_rejects_bad_fields(kwargs):
    with pytest.raises(ValueError):
        Rule(**kwargs)


def test_normalize_accepts_dict_list_and_rule_set():
    expected = {"rules": [SHOES, {"id": "r", "when": "true", "then": [{"add_segment": "x"}]}]}
    rule = Rule("r", "true", [add_segment("x")])
    assert normalize_rule_set(expected) == expected
    assert normalize_rule_set([SHOES, rule]) == expected
    assert normalize_rule_set((SHOES, rule)) == expected
    assert normalize_rule_set(RuleSet([SHOES, rule])) == expected
    assert normalize_rule_set({"rules": [SHOES, rule]}) == expected
    # Rule sets inside a list are spliced in.
    assert normalize_rule_set([RuleSet([SHOES]), rule]) == expected
    assert normalize_rule_set([]) == {"rules": []}


def test_normalize_copies_its_input():
    original = {"rules": [dict(SHOES)]}
    out = normalize_rule_set(original)
    out["rules"][0]["id"] = "changed"
    assert original["rules"][0]["id"] == "count"


def test_normalize_keeps_extra_keys():
    assert normalize_rule_set({"rules": [], "comment": "c"}) == {"rules": [], "comment": "c"}


@pytest.mark.parametrize(
    "bad, error",
    [
        (SHOES, ValueError),  # a single rule dict, not a set
        (Rule("r", "true"), TypeError),
        ("rules", TypeError),
        ({"rules": "nope"}, TypeError),
        ([42], TypeError),
        ([{"rules": []}], TypeError),
    ],
)
def test_normalize_rejects(bad, error):
    with pytest.raises(error):
        normalize_rule_set(bad)


def test_rule_set_concatenation():
    a, b = RuleSet([SHOES]), Rule("r", "true")
    both = a + b
    assert [r["id"] for r in both] == ["count", "r"] and len(a) == 1 and len(both) == 2
    assert both[1] == b.to_dict()
    assert (a + RuleSet([b])) == both
