"""Model export with tiny hand-built models (plain objects shaped like fitted scikit-learn models)."""

from types import SimpleNamespace

import pytest

from ecrm_client.export import decision_tree_rule, logistic_regression_rule, scorecard_rule


def lr(coef, intercept, classes=(0, 1), **extra):
    return SimpleNamespace(coef_=coef, intercept_=intercept, classes_=list(classes), **extra)


def tree(feature, threshold, left, right, value, classes=(0, 1), n_features=2):
    t = SimpleNamespace(
        feature=feature,
        threshold=threshold,
        children_left=left,
        children_right=right,
        value=value,
        n_outputs=1,
        n_features=n_features,
    )
    return SimpleNamespace(tree_=t, classes_=list(classes))


FEATURES = {"page_views": "double(profile.stats.page_views)", "x0": "double(profile.traits.x0)"}


def only_rule(rules):
    assert len(rules) == 1
    return rules[0]


def test_logistic_regression_exact_text():
    rule = only_rule(logistic_regression_rule(lr([[0.4, -1.25]], [-2.0]), FEATURES, rule_id="p", score="buy"))
    assert rule == {
        "id": "p",
        "when": "true",
        "then": [
            {
                "set_score": {
                    "name": "buy",
                    "value": "sigmoid(-2.0 + 0.4 * double(profile.stats.page_views)"
                    " - 1.25 * double(profile.traits.x0))",
                }
            }
        ],
    }


def test_logistic_regression_keeps_every_digit():
    rule = only_rule(logistic_regression_rule(lr([[0.1 + 0.2]], [1 / 3]), ["a"], rule_id="p", score="s"))
    assert rule["then"][0]["set_score"]["value"] == (
        "sigmoid(0.3333333333333333 + 0.30000000000000004 * double(profile.traits.a))"
    )


def test_logistic_regression_with_segment_and_when():
    rules = logistic_regression_rule(
        lr([[1.5]], [0.0]),
        ["a"],
        rule_id="p",
        score="s",
        when="event.type == 'track'",
        segment="likely",
        threshold=0.75,
        remove_below=True,
    )
    score = "sigmoid(0.0 + 1.5 * double(profile.traits.a))"
    assert [r["id"] for r in rules] == ["p", "p-segment", "p-unsegment"]
    assert rules[0]["when"] == "event.type == 'track'"
    assert rules[1] == {
        "id": "p-segment",
        "when": f"(event.type == 'track') && {score} > 0.75",
        "then": [{"add_segment": "likely"}],
    }
    assert rules[2] == {
        "id": "p-unsegment",
        "when": f"(event.type == 'track') && !({score} > 0.75)",
        "then": [{"remove_segment": "likely"}],
    }


def test_logistic_regression_rejects_multiclass():
    model = lr([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, 0.0], classes=(0, 1, 2))
    with pytest.raises(ValueError, match="binary classification only: the model has 3 classes"):
        logistic_regression_rule(model, ["a", "b"], rule_id="p", score="s")


def test_logistic_regression_rejects_feature_mismatch():
    with pytest.raises(ValueError, match="the model has 2 features, 1 were given"):
        logistic_regression_rule(lr([[1.0, 2.0]], [0.0]), ["a"], rule_id="p", score="s")
    named = lr([[1.0, 2.0]], [0.0], feature_names_in_=["b", "a"])
    with pytest.raises(ValueError, match="do not match the model's columns"):
        logistic_regression_rule(named, ["a", "b"], rule_id="p", score="s")
    with pytest.raises(ValueError, match="not a CEL identifier"):
        logistic_regression_rule(lr([[1.0]], [0.0]), ["page-views"], rule_id="p", score="s")


def test_logistic_regression_rejects_unfitted_and_nan():
    with pytest.raises(ValueError, match="fitted"):
        logistic_regression_rule(SimpleNamespace(classes_=[0, 1]), ["a"], rule_id="p", score="s")
    with pytest.raises(ValueError, match="no literal for nan"):
        logistic_regression_rule(lr([[float("nan")]], [0.0]), ["a"], rule_id="p", score="s")


def test_decision_tree_exact_text():
    #        0: x0 <= 0.5
    #       /            \
    #  1: leaf [3, 1]   2: page_views <= 2.5
    #                   /               \
    #            3: leaf [1, 1]      4: leaf [0, 2]
    model = tree(
        feature=[1, -2, 0, -2, -2],
        threshold=[0.5, -2.0, 2.5, -2.0, -2.0],
        left=[1, -1, 3, -1, -1],
        right=[2, -1, 4, -1, -1],
        value=[[[4.0, 4.0]], [[3.0, 1.0]], [[1.0, 3.0]], [[1.0, 1.0]], [[0.0, 2.0]]],
    )
    rule = only_rule(decision_tree_rule(model, FEATURES, rule_id="t", score="s"))
    assert rule["then"][0]["set_score"]["value"] == (
        "double(profile.traits.x0) <= 0.5 ? 0.25 : "
        "(double(profile.stats.page_views) <= 2.5 ? 0.5 : 1.0)"
    )


def test_decision_tree_leaf_value_is_the_normalised_weight():
    # scikit-learn >= 1.4 stores fractions; older versions store weighted counts. Both normalise.
    model = tree([0, -2, -2], [0.1, -2.0, -2.0], [1, -1, -1], [2, -1, -1],
                 [[[0.5, 0.5]], [[0.7, 0.3]], [[0.0, 0.0]]], n_features=1)
    value = only_rule(decision_tree_rule(model, ["a"], rule_id="t", score="s"))["then"][0]["set_score"]["value"]
    assert value == f"double(profile.traits.a) <= 0.1 ? {0.3 / (0.7 + 0.3)!r} : 0.0"


def test_decision_tree_folds_equal_subtrees_and_single_leaf():
    model = tree([0, -2, -2], [0.1, -2.0, -2.0], [1, -1, -1], [2, -1, -1],
                 [[[2.0, 2.0]], [[1.0, 1.0]], [[1.0, 1.0]]], n_features=1)
    assert only_rule(decision_tree_rule(model, ["a"], rule_id="t", score="s"))["then"][0]["set_score"]["value"] == "0.5"


def test_decision_tree_rejects_multiclass():
    model = tree([-2], [-2.0], [-1], [-1], [[[1.0, 1.0, 1.0]]], classes=(0, 1, 2), n_features=1)
    with pytest.raises(ValueError, match="binary classification"):
        decision_tree_rule(model, ["a"], rule_id="t", score="s")


def test_scorecard():
    rules = scorecard_rule(
        {"visits": 2.0, "refunds": -5.0},
        10.0,
        rule_id="card",
        score="points",
        features={"visits": "double(profile.stats.sessions)"},
        link="identity",
        segment="good",
        threshold=20,
    )
    value = "10.0 + 2.0 * double(profile.stats.sessions) - 5.0 * double(profile.traits.refunds)"
    assert rules[0]["then"] == [{"set_score": {"name": "points", "value": value}}]
    assert rules[1]["when"] == f"({value}) > 20.0"
    assert scorecard_rule({"a": 1.0}, rule_id="c", score="s")[0]["then"][0]["set_score"]["value"] == (
        "sigmoid(0.0 + 1.0 * double(profile.traits.a))"
    )
    with pytest.raises(ValueError):
        scorecard_rule({"a": 1.0}, rule_id="c", score="s", link="probit")
