"""Small helpers for the server tests: reading dry-run answers and sending events."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any, Mapping

EXAMPLE_RULE_SET = {
    "rules": [
        {
            "id": "count-shoe-views",
            "when": "event.type == 'track' && event.event == 'Product Viewed' && event.properties.category == 'shoes'",
            "then": [{"increment": {"counter": "shoe_views"}}],
        },
        {"id": "shoe-lover", "when": "profile.counters.shoe_views >= 3", "then": [{"add_segment": "shoe-lover"}]},
        {
            "id": "buy-propensity",
            "when": "true",
            "then": [
                {"set_score": {"name": "buy_propensity", "value": "sigmoid(0.4 * double(profile.stats.page_views) - 2.0)"}}
            ],
        },
    ]
}


def shoe_view(anonymous_id: str = "a1") -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": anonymous_id,
        "properties": {"product_id": "7", "category": "shoes", "price": 89.0},
    }


def results_by_rule(answer: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in answer["results"]}


def score_actions(result: Mapping[str, Any]) -> dict[str, float]:
    """``{score name: value}`` of the set_score actions of one rule's result."""
    return {a["set_score"]["name"]: a["set_score"]["value"] for a in result.get("actions", []) if "set_score" in a}


def segment_names(profile: Mapping[str, Any]) -> set[str]:
    """Segment names, whether the profile lists names or {"name", ...} objects."""
    segs = profile.get("segments") or []
    if isinstance(segs, Mapping):
        return set(segs)
    return {s["name"] if isinstance(s, Mapping) else s for s in segs}


def track(base_url: str, write_key: str, event: Mapping[str, Any]) -> None:
    """Sends one event to the collector (``POST /v1/batch`` with the write key) and waits for the ack."""
    body = json.dumps({"batch": [dict(event)]}).encode()
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    req = urllib.request.Request(
        base_url + "/v1/batch",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
    )
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.status == 200, res.read()
