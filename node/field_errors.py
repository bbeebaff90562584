"""The strict reader of officer JSON: :class:`FieldErrors` checks a decoded body and collects every error.

:mod:`node.compose` validates the officer API's request bodies with it. Each
reader method takes a value from the decoded JSON (or :data:`MISSING` for an
absent field), checks its JSON type, its keys or its value with the rules of
:mod:`node.field_rules`, and returns the checked value or None. Instead of
stopping at the first problem it files a sentence under the value's JSON path
(``tiers[1].recipients[0]``; ``$`` is the body itself), so the HTTP 422 answer
of :meth:`FieldErrors.raise_if_any` names every offending field at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from node.field_rules import FieldInvalid, clean_text
from protocol import fields
from protocol.errors import ValidationError

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number", type(None): "null"}


MISSING: Any = object()
"""Stands for a field absent from the request; every reader below passes it through as None."""


class FieldErrors:
    """Reads decoded officer JSON strictly, collecting ``{path: sentence}`` instead of stopping.

    Each reader returns the checked value, or None after recording why (or
    when handed :data:`MISSING`). The first error at a path wins, and at most
    ``limit`` are kept, so a hostile body cannot make the answer huge.
    """

    def __init__(self, limit: int) -> None:
        self.fields: dict[str, str] = {}
        self._limit = limit

    def add(self, path: str, message: str) -> None:
        if len(self.fields) < self._limit:
            self.fields.setdefault(path, message)

    def check(self, path: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a check raising :class:`FieldInvalid`; record its sentence and return None on failure."""
        try:
            return fn(*args, **kwargs)
        except FieldInvalid as exc:
            self.add(path, str(exc))
            return None

    def raise_if_any(self) -> None:
        """Raise if anything was recorded.

        Raises:
            ValidationError: With every recorded path and sentence.
        """
        if self.fields:
            raise ValidationError(self.fields)

    def obj(self, path: str, value: Any, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any] | None:
        """A JSON object; unknown keys and missing required keys are errors at their own paths."""
        if value is MISSING:
            return None
        if type(value) is not dict:
            self.add(path, f"Must be a JSON object, not {_json_type(value)}.")
            return None
        known = {*required, *optional}
        for key in value:
            if key not in known:
                self.add(_key_path(path, key), "Is not a known field.")
        for key in sorted(required):
            if key not in value:
                self.add(_key_path(path, key), "Is required.")
        return value

    def array(self, path: str, value: Any, *, min_items: int, max_items: int, what: str) -> list[Any] | None:
        """A JSON array; beyond ``max_items`` only the first ``max_items`` are returned for checking."""
        if value is MISSING:
            return None
        if type(value) is not list:
            self.add(path, f"Must be a JSON array, not {_json_type(value)}.")
            return None
        if len(value) < min_items:
            self.add(path, f"Must hold at least {min_items} {what}.")
        if len(value) > max_items:
            self.add(path, f"Must hold at most {max_items} {what}.")
        return value[:max_items]

    def enum(self, path: str, value: Any, allowed: tuple[str, ...]) -> str | None:
        """Exactly one of ``allowed`` (case-sensitive); a near miss gets a "did you mean"."""
        if value is MISSING:
            return None
        if type(value) is str and value in allowed:
            return value
        message = f"Must be one of {', '.join(allowed)}."
        if type(value) is str and len(value) < 40:
            folded = "tlp:clear" if value.upper() in ("WHITE", "TLP:WHITE") else value.casefold()
            guess = next((a for a in allowed if a.casefold() in (folded, "tlp:" + folded)), None)
            if guess is not None:
                message += f' Did you mean "{guess}"?'
        self.add(path, message)
        return None

    def text(self, path: str, value: Any, **rules: Any) -> str | None:
        """Officer text, checked and normalised by :func:`clean_text` with ``rules``."""
        return None if value is MISSING else self.check(path, clean_text, value, **rules)

    def short_name(self, path: str, value: Any) -> str | None:
        """A tier name (docs/PROTOCOL.md 1.4)."""
        if value is MISSING:
            return None
        if type(value) is not str or not fields.NAME_RE.fullmatch(value):
            self.add(path, "Must be a short name: a lower-case letter, then up to 31 lower-case letters, digits, '_' or '-'.")
            return None
        return value


def _key_path(parent: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return key if parent == "$" else f"{parent}.{key}"
    return f"{parent}[{json.dumps(key if len(key) <= 40 else key[:40] + '...')}]"


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)
