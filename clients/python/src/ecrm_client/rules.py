"""Rule sets: small builders (`Rule`, `RuleSet`, action helpers) and the normalisation every
client call applies to what it is given.

A rule set on the wire is ``{"rules": [{"id", "when", "then": [action, ...], "once"?}, ...]}``.
The builders only shape JSON; the server is the one that validates CEL and actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

Action = dict[str, Any]
RuleLike = Union["Rule", Mapping[str, Any]]
RuleSetLike = Union["RuleSet", Mapping[str, Any], Sequence[Union[RuleLike, "RuleSet"]]]

ONCE_VALUES = ("session", "profile")


# --- actions ---------------------------------------------------------------------------------


def add_segment(name: str, ttl: Any = None) -> Action:
    """``add_segment``: the bare name, or ``{"name", "ttl"}`` when a ttl is given (passed as is)."""
    return {"add_segment": name if ttl is None else {"name": name, "ttl": ttl}}


def remove_segment(name: str) -> Action:
    """``remove_segment``."""
    return {"remove_segment": name}


def increment(counter: str, by: Any = None, window: Any = None) -> Action:
    """``increment`` a counter, by 1 unless ``by`` is given, optionally over a ``window``."""
    spec: dict[str, Any] = {"counter": counter}
    if by is not None:
        spec["by"] = by
    if window is not None:
        spec["window"] = window
    return {"increment": spec}


def set_trait(name: str, value: Any) -> Action:
    """``set_trait``; ``value`` is what the server expects (a CEL expression string)."""
    return {"set_trait": {"name": name, "value": value}}


def set_score(name: str, value: Any) -> Action:
    """``set_score``; ``value`` is a CEL expression string yielding a number (or a number)."""
    return {"set_score": {"name": name, "value": value}}


def offer(id: str, priority: Any) -> Action:  # noqa: A002 - the wire name
    """``offer`` with an id and a priority."""
    return {"offer": {"id": id, "priority": priority}}


# --- rules -----------------------------------------------------------------------------------


@dataclass
class Rule:
    """One rule: when the CEL expression ``when`` holds for an event, apply the actions ``then``.

    ``once`` ("session" or "profile") limits the rule to one match per session or per profile.
    """

    id: str
    when: str
    then: list[Action] = field(default_factory=list)
    once: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("rule id must be a non-empty string")
        if not isinstance(self.when, str) or not self.when.strip():
            raise ValueError(f"rule {self.id!r}: 'when' must be a non-empty CEL expression string")
        if self.once is not None and self.once not in ONCE_VALUES:
            raise ValueError(f"rule {self.id!r}: 'once' must be one of {ONCE_VALUES}, not {self.once!r}")
        self.then = [dict(a) for a in self.then]

    def to_dict(self) -> dict[str, Any]:
        """The wire form."""
        out: dict[str, Any] = {"id": self.id, "when": self.when, "then": [dict(a) for a in self.then]}
        if self.once is not None:
            out["once"] = self.once
        return out


class RuleSet:
    """An ordered list of rules; what the server evaluates, in that order, for each event.

    Built from rules, rule dicts or other rule sets (which are spliced in); ``+`` concatenates.
    """

    def __init__(self, rules: Iterable[Union[RuleLike, "RuleSet"]] = ()) -> None:
        self.rules: list[dict[str, Any]] = []
        self.extend(rules)

    def add(self, rule: Union[RuleLike, "RuleSet"]) -> "RuleSet":
        """Appends one rule (or every rule of a rule set); returns self."""
        if isinstance(rule, RuleSet):
            self.rules.extend(dict(r) for r in rule.rules)
        else:
            self.rules.append(rule_to_dict(rule))
        return self

    def extend(self, rules: Iterable[Union[RuleLike, "RuleSet"]]) -> "RuleSet":
        """Appends each of ``rules``; returns self."""
        for rule in rules:
            self.add(rule)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The wire form ``{"rules": [...]}``."""
        return {"rules": [dict(r) for r in self.rules]}

    def __add__(self, other: Union[RuleLike, "RuleSet"]) -> "RuleSet":
        return RuleSet([self]).add(other)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rules[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleSet) and self.rules == other.rules

    def __repr__(self) -> str:
        return f"RuleSet({self.rules!r})"


def rule_to_dict(rule: RuleLike) -> dict[str, Any]:
    """A `Rule` or a rule dict as a plain dict (a shallow copy); TypeError for anything else."""
    if isinstance(rule, Rule):
        return rule.to_dict()
    if isinstance(rule, Mapping):
        if "rules" in rule:
            raise TypeError("expected a rule, got a rule set (a mapping with 'rules')")
        return dict(rule)
    raise TypeError(f"expected a Rule or a rule dict, got {type(rule).__name__}")


def normalize_rule_set(rule_set: RuleSetLike) -> dict[str, Any]:
    """The wire form of anything the client accepts as a rule set.

    Accepted: a `RuleSet`; a mapping with a ``"rules"`` list (other keys are kept); a list or tuple
    of rules (`Rule` objects, rule dicts, or `RuleSet` objects, which are spliced in).
    """
    if isinstance(rule_set, RuleSet):
        return rule_set.to_dict()
    if isinstance(rule_set, Rule):
        raise TypeError("expected a rule set, got a single Rule: wrap it as [rule] or RuleSet([rule])")
    if isinstance(rule_set, Mapping):
        if "rules" not in rule_set:
            raise ValueError("a rule set mapping needs a 'rules' key (a single rule? wrap it in a list)")
        rules = rule_set["rules"]
        if not isinstance(rules, (list, tuple)):
            raise TypeError(f"'rules' must be a list, got {type(rules).__name__}")
        out = dict(rule_set)
        out["rules"] = RuleSet(rules).rules
        return out
    if isinstance(rule_set, (list, tuple)):
        return RuleSet(rule_set).to_dict()
    raise TypeError(
        f"expected a RuleSet, a {{'rules': [...]}} mapping or a list of rules, got {type(rule_set).__name__}"
    )
