"""`Client`: ecrm's admin HTTP API (rules and profiles) over the standard library only."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping, Optional

from .errors import EcrmError, error_from_response
from .rules import RuleSetLike, normalize_rule_set

USER_AGENT = "ecrm-client-python/0.1"


class Client:
    """A handle on one ecrm server's admin API, authenticated with its admin token.

    Holds no connection: each call is one HTTP request, so a Client may be shared by threads.
    Every call raises `EcrmError` unless the server answers 2xx.
    """

    def __init__(self, base_url: str, admin_token: str, timeout: float = 10) -> None:
        """``base_url`` like ``http://127.0.0.1:8080``; ``timeout`` in seconds per request."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout

    # --- rules ---------------------------------------------------------------------------------

    def push_rules(self, rule_set: RuleSetLike) -> int:
        """Validates and activates a rule set (``PUT /v1/rules``); returns its new version."""
        return int(self._request("PUT", "/v1/rules", normalize_rule_set(rule_set))["version"])

    def validate(self, rule_set: RuleSetLike) -> None:
        """Checks a rule set without activating it (``POST /v1/rules/validate``).

        Returns None when it is valid; raises `EcrmError` (code ``invalid_rule_set``, with
        ``details``) when it is not.
        """
        self._request("POST", "/v1/rules/validate", normalize_rule_set(rule_set))

    def get_rules(self) -> dict[str, Any]:
        """The active rule set: ``{"version": N, "rules": [...]}`` (version 0 and [] when none)."""
        return self._request("GET", "/v1/rules")

    def rollback(self, version: int) -> int:
        """Re-activates an earlier version's rules as a new version; returns that new version."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"version must be an int, got {type(version).__name__}")
        return int(self._request("POST", "/v1/rules/rollback", {"version": version})["version"])

    def dry_run(
        self,
        event: Mapping[str, Any],
        rule_set: Optional[RuleSetLike] = None,
        profile: Optional[Mapping[str, Any]] = None,
        profile_id: Optional[str] = None,
    ) -> dict[str, Any]:
        """Evaluates rules against one event without storing anything (``POST /v1/rules/test``).

        Args:
            event: a Segment event, e.g. ``{"type": "track", "event": "Product Viewed", ...}``.
            rule_set: the rules to try; the active set when None.
            profile: a partial profile to start from (``traits``, ``counters``, ``stats``, ...).
            profile_id: ``type:value`` of a stored profile to start from instead.

        Returns:
            ``{"version": N or None, "results": [{"rule", "matched", "error"?, "actions"}],
            "profile": {...}}`` as the server answers it.
        """
        body: dict[str, Any] = {"event": dict(event)}
        if rule_set is not None:
            body["rules"] = normalize_rule_set(rule_set)
        if profile is not None:
            body["profile"] = dict(profile)
        if profile_id is not None:
            body["profile_id"] = profile_id
        return self._request("POST", "/v1/rules/test", body)

    # --- profiles ------------------------------------------------------------------------------

    def get_profile(self, identifier: str) -> dict[str, Any]:
        """The whole stored profile for ``type:value`` (e.g. ``email:ada@example.com``).

        The value is given raw; the client percent-encodes it. Raises `EcrmError` with status 404
        (code ``not_found``) for an unknown identifier.
        """
        kind, sep, value = identifier.partition(":")
        if not sep or not kind or not value:
            raise ValueError(f"identifier must look like type:value, got {identifier!r}")
        path = f"/v1/profiles/{urllib.parse.quote(kind, safe='')}:{urllib.parse.quote(value, safe='')}"
        return self._request("GET", path)

    # --- plumbing ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One JSON request; the parsed JSON answer, or EcrmError."""
        headers = {
            "Authorization": f"Bearer {self.admin_token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        data = None
        if body is not None:
            try:
                data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
            except ValueError as e:  # NaN or infinity: JSON has no spelling for them
                raise ValueError(f"cannot send {method} {path}: {e}") from e
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                status, raw = res.status, res.read()
        except urllib.error.HTTPError as e:
            raise error_from_response(e.code, e.read()) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise EcrmError(None, "unreachable", f"{method} {self.base_url}{path}: {reason}") from e
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise EcrmError(status, "bad_response", f"{method} {path}: not JSON: {raw[:200]!r}") from None
        if not isinstance(parsed, dict):
            raise EcrmError(status, "bad_response", f"{method} {path}: expected a JSON object")
        return parsed

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"
