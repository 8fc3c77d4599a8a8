"""Exports of real scikit-learn models, checked without a server by evaluating the CEL text with
tests/mini_cel.py (the server-side parity test is in test_server_export.py)."""

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from ecrm_client.export import decision_tree_rule, logistic_regression_rule  # noqa: E402
from mini_cel import evaluate  # noqa: E402
from synthetic import FEATURES, dataset  # noqa: E402


def score_text(rules):
    return rules[0]["then"][0]["set_score"]["value"]


def test_logistic_regression_matches_predict_proba():
    X, y, sample = dataset()
    model = LogisticRegression().fit(X, y)
    rules = logistic_regression_rule(model, FEATURES, rule_id="lr", score="p", segment="hi")
    expected = model.predict_proba(sample)[:, 1]
    predicted = model.predict(sample)
    for row, p, cls in zip(sample, expected, predicted):
        profile = {"traits": dict(zip(FEATURES, row.tolist()))}
        assert abs(evaluate(score_text(rules), profile=profile) - p) <= 1e-12
        assert evaluate(rules[1]["when"], profile=profile) == (cls == 1)


def test_decision_tree_matches_predict_proba_exactly():
    X, y, sample = dataset()
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    rules = decision_tree_rule(model, FEATURES, rule_id="tree", score="p", segment="hi")
    expected = model.predict_proba(sample)[:, 1]
    predicted = model.predict(sample)
    for row, p, cls in zip(sample, expected, predicted):
        profile = {"traits": dict(zip(FEATURES, row.tolist()))}
        assert evaluate(score_text(rules), profile=profile) == p
        assert evaluate(rules[1]["when"], profile=profile) == (cls == 1)


def test_string_labels_score_the_second_class():
    X, y, sample = dataset()
    labels = np.where(y == 1, "yes", "no")  # classes_ = ["no", "yes"]: the score is P("yes")
    model = LogisticRegression().fit(X, labels)
    rules = logistic_regression_rule(model, FEATURES, rule_id="lr", score="p")
    profile = {"traits": dict(zip(FEATURES, sample[0].tolist()))}
    assert abs(evaluate(score_text(rules), profile=profile) - model.predict_proba(sample[:1])[0, 1]) <= 1e-12


def test_multiclass_models_are_refused():
    X, y, _ = dataset()
    y3 = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    with pytest.raises(ValueError, match="binary classification only"):
        logistic_regression_rule(LogisticRegression(max_iter=1000).fit(X, y3), FEATURES, rule_id="lr", score="p")
    with pytest.raises(ValueError, match="binary classification"):
        decision_tree_rule(DecisionTreeClassifier(max_depth=2).fit(X, y3), FEATURES, rule_id="t", score="p")
