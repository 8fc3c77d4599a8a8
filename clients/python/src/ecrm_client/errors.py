"""The one exception type of the client: an error answered by (or on the way to) ecrm."""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence


class EcrmError(Exception):
    """An ecrm request that did not succeed.

    Attributes:
        status: the HTTP status, or None when no answer came (connection refused, timeout).
        code: ecrm's error code (``invalid_rule_set``, ``unauthorized``, ...); for answers without
            an ecrm error body, ``http_<status>``; ``unreachable`` when no answer came.
        message: the human-readable message.
        details: for ``invalid_rule_set``, one dict per problem with the keys ``rule``, ``field``,
            ``line``, ``column`` and ``message`` (any may be missing); otherwise empty.
    """

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        details: Optional[Sequence[Mapping[str, Any]]] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details: list[dict[str, Any]] = [dict(d) for d in (details or [])]
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no answer"
        lines = [f"{self.code} ({where}): {self.message}"]
        lines.extend("  " + format_detail(d) for d in self.details)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EcrmError(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, details={self.details!r})"
        )


def format_detail(detail: Mapping[str, Any]) -> str:
    """One validation problem as ``rule 'x' when 1:5: message``.

    Parts that the server left out are left out too: ``rule 'x': message``, ``when: message``.
    """
    head = []
    if detail.get("rule") is not None:
        head.append(f"rule {detail['rule']!r}")
    field = detail.get("field")
    line, column = detail.get("line"), detail.get("column")
    position = ""
    if line is not None:
        position = f"{line}:{column}" if column is not None else f"{line}"
    if field and position:
        head.append(f"{field} {position}")
    elif field or position:
        head.append(field or position)
    message = detail.get("message", "")
    return f"{' '.join(head)}: {message}" if head else str(message)


def error_from_response(status: int, body: bytes) -> EcrmError:
    """Builds the error for a non-2xx answer, from ecrm's ``{"error": {...}}`` body when it has one."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict):
        details = err.get("details")
        return EcrmError(
            status,
            str(err.get("code") or f"http_{status}"),
            str(err.get("message", "")),
            [d for d in details if isinstance(d, dict)] if isinstance(details, list) else None,
        )
    return EcrmError(status, f"http_{status}", text.strip()[:500] or f"HTTP {status}")
