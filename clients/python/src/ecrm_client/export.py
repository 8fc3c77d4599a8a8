"""Fitted scikit-learn models (and hand-written scorecards) as ecrm rules.

Each function returns a `RuleSet` whose first rule sets the score on every event that satisfies
``when``. With ``segment=...`` a second rule, ``<rule_id>-segment``, adds that segment when the
score is strictly above ``threshold`` (the same test as ``predict`` for threshold 0.5); with
``remove_below=True`` a third, ``<rule_id>-unsegment``, removes it otherwise, so the segment follows
the score. The segment rules compute the score again instead of reading ``profile.scores``, so they
do not depend on rule order.

Features are named: ``features`` is an ordered mapping name -> CEL expression yielding a number, in
the model's column order, e.g. ``{"page_views": "double(profile.stats.page_views)"}``, or a list of
names, each read with ``template`` (default ``double(profile.traits.{name})``).

Numbers are written with ``float.__repr__``, which round-trips, so the server computes with the very
doubles scikit-learn holds. Parity: logistic regression agrees with ``predict_proba`` to rounding
(the sum's order may differ from BLAS); a tree agrees exactly for feature values that are float32
numbers (scikit-learn compares ``float32(x) <= threshold``, the server compares the double).

The models are read by attribute only (``coef_``, ``tree_``, ...): no scikit-learn import needed.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from . import cel
from .rules import Rule, RuleSet, add_segment, remove_segment, set_score

DEFAULT_TEMPLATE = "double(profile.traits.{name})"
Features = Union[Mapping[str, str], Sequence[str]]


def feature_expressions(features: Features, template: str = DEFAULT_TEMPLATE) -> list[tuple[str, str]]:
    """``[(name, CEL expression), ...]`` in order, from a mapping or a list of names."""
    if isinstance(features, str):
        raise TypeError("features must be a mapping or a list of names, not a string")
    if isinstance(features, Mapping):
        pairs = [(str(name), str(expr)) for name, expr in features.items()]
    else:
        pairs = [(str(name), template.format(name=cel.identifier(str(name)))) for name in features]
    if not pairs:
        raise ValueError("features is empty")
    if len({name for name, _ in pairs}) != len(pairs):
        raise ValueError("features has duplicate names")
    for name, expr in pairs:
        if not expr.strip():
            raise ValueError(f"feature {name!r} has an empty expression")
    return pairs


def scorecard_rule(
    weights: Mapping[str, float],
    intercept: float = 0.0,
    *,
    rule_id: str,
    score: str,
    features: Optional[Mapping[str, str]] = None,
    template: str = DEFAULT_TEMPLATE,
    link: str = "sigmoid",
    when: str = "true",
    segment: Optional[str] = None,
    threshold: float = 0.5,
    remove_below: bool = False,
) -> RuleSet:
    """A hand-written scorecard: score = link(intercept + sum of weight * feature).

    ``weights`` maps feature names to weights, in the order to sum them. A name's expression comes
    from ``features`` when given there, else from ``template``. ``link`` is ``"sigmoid"`` (a
    probability) or ``"identity"`` (points).
    """
    if link not in ("sigmoid", "identity"):
        raise ValueError(f"link must be 'sigmoid' or 'identity', not {link!r}")
    exprs = dict(features or {})
    terms = []
    for name, weight in weights.items():
        expr = exprs.get(name) or template.format(name=cel.identifier(name))
        terms.append((weight, expr))
    if not terms:
        raise ValueError("weights is empty")
    value = cel.linear(intercept, terms)
    if link == "sigmoid":
        value = f"sigmoid({value})"
    return _score_rules(rule_id, score, value, when, segment, threshold, remove_below)


def logistic_regression_rule(
    model: Any,
    features: Features,
    *,
    rule_id: str,
    score: str,
    when: str = "true",
    segment: Optional[str] = None,
    threshold: float = 0.5,
    remove_below: bool = False,
    template: str = DEFAULT_TEMPLATE,
) -> RuleSet:
    """A fitted binary ``LogisticRegression`` as ``score = sigmoid(b + w1 * f1 + ...)``.

    The score is the probability of ``model.classes_[1]`` (``predict_proba(X)[:, 1]``).
    Raises ValueError for a multiclass or unfitted model, or features that do not fit it.
    """
    classes = _classes(model)
    coef = _rows(_fitted(model, "coef_"))
    intercept = _flat(_fitted(model, "intercept_"))
    if len(classes) != 2 or len(coef) != 1 or len(intercept) != 1:
        raise ValueError(
            f"binary classification only: the model has {len(classes)} classes "
            f"({len(coef)} coefficient rows); export one one-vs-rest model per class instead"
        )
    if getattr(model, "multi_class", None) == "multinomial":
        raise ValueError(
            "multi_class='multinomial' on a binary problem is scored by softmax in older "
            "scikit-learn versions; refit with the default multi_class"
        )
    pairs = _check_features(model, feature_expressions(features, template), len(coef[0]))
    value = cel.linear(intercept[0], [(w, expr) for w, (_, expr) in zip(coef[0], pairs)])
    return _score_rules(rule_id, score, f"sigmoid({value})", when, segment, threshold, remove_below)


def decision_tree_rule(
    model: Any,
    features: Features,
    *,
    rule_id: str,
    score: str,
    when: str = "true",
    segment: Optional[str] = None,
    threshold: float = 0.5,
    remove_below: bool = False,
    template: str = DEFAULT_TEMPLATE,
) -> RuleSet:
    """A fitted binary ``DecisionTreeClassifier`` as nested ``f <= t ? left : right``.

    Splits send ``x <= threshold`` left, as scikit-learn does. A leaf's value is the probability of
    ``model.classes_[1]``: its class weight divided by the leaf's total, as ``predict_proba``
    computes it. Subtrees whose two sides come out the same are folded into one.
    """
    classes = _classes(model)
    tree = _fitted(model, "tree_")
    if len(classes) != 2 or int(getattr(tree, "n_outputs", 1)) != 1:
        raise ValueError(
            f"binary classification with one output only: the model has {len(classes)} classes "
            f"and {getattr(tree, 'n_outputs', 1)} outputs"
        )
    pairs = _check_features(model, feature_expressions(features, template), int(tree.n_features))
    exprs = [cel.atom(expr) for _, expr in pairs]
    left, right = _flat(tree.children_left), _flat(tree.children_right)
    feature, thresholds = _flat(tree.feature), _flat(tree.threshold)
    values = tree.value

    def node(i: int) -> str:
        if int(left[i]) == -1:
            weights = [float(v) for v in _flat(values[i][0])]
            if len(weights) != 2:
                raise ValueError(f"leaf {i} has {len(weights)} class weights, expected 2")
            total = weights[0] + weights[1]
            return cel.double(weights[1] / (total if total != 0.0 else 1.0))
        yes, no = node(int(left[i])), node(int(right[i]))
        if yes == no:
            return yes
        cond = f"{exprs[int(feature[i])]} <= {cel.double(thresholds[i])}"
        return f"{cond} ? {_group(yes)} : {_group(no)}"

    return _score_rules(rule_id, score, node(0), when, segment, threshold, remove_below)


# --- helpers ---------------------------------------------------------------------------------


def _score_rules(
    rule_id: str,
    score: str,
    value: str,
    when: str,
    segment: Optional[str],
    threshold: float,
    remove_below: bool,
) -> RuleSet:
    rules = RuleSet([Rule(rule_id, when, [set_score(score, value)])])
    if segment is None:
        if remove_below:
            raise ValueError("remove_below needs a segment")
        return rules
    above = f"{_group(value)} > {cel.double(threshold)}"
    rules.add(Rule(f"{rule_id}-segment", cel.conjoin(when, above), [add_segment(segment)]))
    if remove_below:
        below = f"!({above})"
        rules.add(Rule(f"{rule_id}-unsegment", cel.conjoin(when, below), [remove_segment(segment)]))
    return rules


def _group(expr: str) -> str:
    """Parentheses around a conditional (or anything but a call or a number)."""
    return cel.atom(expr)


def _fitted(model: Any, attribute: str) -> Any:
    try:
        return getattr(model, attribute)
    except AttributeError:
        raise ValueError(f"{type(model).__name__} has no {attribute}: is it a fitted model?") from None


def _classes(model: Any) -> list[Any]:
    return list(_flat(_fitted(model, "classes_")))


def _flat(values: Any) -> list[Any]:
    """A 1-D array-like (numpy or not) as a list."""
    return list(values.tolist() if hasattr(values, "tolist") else values)


def _rows(values: Any) -> list[list[Any]]:
    return [list(row) for row in (values.tolist() if hasattr(values, "tolist") else values)]


def _check_features(model: Any, pairs: list[tuple[str, str]], n_features: int) -> list[tuple[str, str]]:
    """The features, after checking them against the model's width and column names."""
    if len(pairs) != n_features:
        raise ValueError(f"the model has {n_features} features, {len(pairs)} were given")
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        fitted = [str(n) for n in _flat(names)]
        given = [name for name, _ in pairs]
        if fitted != given:
            raise ValueError(f"features {given} do not match the model's columns {fitted} (same order)")
    return pairs
