"""Export parity on a real ecrm: the server's dry-run score equals scikit-learn's predict_proba
(needs ECRM_BINARY, numpy and scikit-learn)."""

import pytest

from ecrm_client import Client
from server_helpers import results_by_rule, score_actions

pytestmark = pytest.mark.server

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from ecrm_client.export import decision_tree_rule, logistic_regression_rule  # noqa: E402
from synthetic import FEATURES, dataset  # noqa: E402

EVENT = {"type": "track", "event": "Score Requested", "anonymousId": "py-export", "properties": {}}


def server_scores(client: Client, rules, rows):
    """(score, segment rule matched) per row, from dry-runs with the row as profile traits."""
    client.validate(rules)
    out = []
    for row in rows:
        answer = client.dry_run(EVENT, rule_set=rules, profile={"traits": dict(zip(FEATURES, row.tolist()))})
        results = results_by_rule(answer)
        first, segment = results[rules[0]["id"]], results[rules[1]["id"]]
        assert first["matched"] and "error" not in first and "error" not in segment, answer
        out.append((score_actions(first)["p"], segment["matched"]))
    return out


def test_logistic_regression_parity(client: Client):
    X, y, sample = dataset()
    model = LogisticRegression().fit(X, y)
    rules = logistic_regression_rule(model, FEATURES, rule_id="lr", score="p", segment="likely")
    expected, predicted = model.predict_proba(sample)[:, 1], model.predict(sample)
    for (score, in_segment), p, cls, row in zip(server_scores(client, rules, sample), expected, predicted, sample):
        assert abs(score - p) <= 1e-9, (row.tolist(), score, p)
        assert in_segment == (cls == 1), (row.tolist(), score)


def test_decision_tree_parity(client: Client):
    X, y, sample = dataset()
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    features = {name: f"double(profile.traits.{name})" for name in FEATURES}
    rules = decision_tree_rule(model, features, rule_id="tree", score="p", segment="likely")
    expected, predicted = model.predict_proba(sample)[:, 1], model.predict(sample)
    for (score, in_segment), p, cls, row in zip(server_scores(client, rules, sample), expected, predicted, sample):
        assert score == p, (row.tolist(), score, p)
        assert in_segment == (cls == 1), (row.tolist(), score)
