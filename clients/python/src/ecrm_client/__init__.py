"""Python client for ecrm's admin API: push, validate and dry-run rule sets, read profiles, and
export scikit-learn models as rules (`ecrm_client.export`)."""

from .client import Client
from .errors import EcrmError
from .rules import (
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

__all__ = [
    "Client",
    "EcrmError",
    "Rule",
    "RuleSet",
    "add_segment",
    "increment",
    "normalize_rule_set",
    "offer",
    "remove_segment",
    "set_score",
    "set_trait",
]
__version__ = "0.1.0"
