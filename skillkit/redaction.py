"""Keep secrets out of everything the tracker sends away: params, tags, metric names and artifacts.

Specs and sweep configs can carry an `encryption_key`, AWS credentials, database passwords inside a storage
URI, or tokens. A tracking server is often shared, so redaction happens before an operation is even written
to the local journal: what is journaled is exactly what will be logged, and nothing secret touches either.

Three rules, applied together:
1. a mapping key that names a secret (`encryption_key`, `aws_secret_access_key`, `*password*`, `*token*`,
   `*secret*`, ...) has its value replaced, whatever the value is;
2. strings that look like credentials are masked wherever they appear: AWS access key ids (`AKIA...`),
   the password part of `scheme://user:password@host` URIs, and `key=value` / `key: value` text pairs whose
   key names a secret (status logs, train logs);
3. every secret value found by rule 1, plus the AWS secrets in this process's environment and the
   credentials registered at runtime (`register_secret`: keys resolved from a profile or a role), is
   remembered and masked as a literal substring anywhere else it shows up (a key echoed into a log message).

`redact` is the narrow form for messages that keep their syntax (storage errors folding in a library's
text): known credential values and URI passwords only. Both forms write the one placeholder `REDACTED`.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "<redacted>"

# Whole key names (last dotted segment, lower-cased) that always hold secrets.
_SECRET_KEYS = frozenset(
    {
        "encryption_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "access_key",
        "secret_key",
        "private_key",
        "api_key",
        "apikey",
        "passwd",
    }
)
# Words that mark a key as secret when they appear as one of its `_`/`-` separated words.
_SECRET_WORDS = frozenset({"password", "passwd", "secret", "token", "credential", "credentials", "apikey"})

_AWS_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|ANPA|ANVA|AGPA)[A-Z0-9]{16}\b")
_URI_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_SECRET_PAIR = re.compile(
    r"""(?P<key>[A-Za-z0-9_.\-]*(?:encryption_key|secret|token|password|passwd|access_key|api_key|credential)[A-Za-z0-9_\-]*)
        (?P<sep>["']?\s*[:=]\s*["']?)
        (?P<value>[^\s"',;}\]]+)""",
    re.IGNORECASE | re.VERBOSE,
)
_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID",
                "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
_MIN_LITERAL = 4  # shorter "secrets" (e.g. "abc") would mask ordinary text everywhere

# Credentials resolved at runtime (a profile's or a role's keys): every redactor of this process masks them.
_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Treat these credential values as secrets in this whole process from now on (empty/short ones ignored)."""
    with _registered_lock:
        _registered.update(value for value in values if value and len(value) >= _MIN_LITERAL)


def _mask_uri_passwords(text: str) -> str:
    return _URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with every known credential value (environment, registered, `extra`) and the password of any
    `scheme://user:password@host` replaced by `REDACTED`; the rest of the text is left exactly as it was."""
    return _mask_uri_passwords(Redactor(extra_secrets=extra).literals(text))


def is_secret_key(name: str) -> bool:
    """True when a (possibly dotted) key names a secret, judged by its last segment."""
    last = str(name).rsplit(".", 1)[-1].lower()
    if last in _SECRET_KEYS:
        return True
    words = set(re.split(r"[_\-\s]+", last))
    return bool(words & _SECRET_WORDS) or (last.startswith("aws_") and ("key" in words or "secret" in words))


class Redactor:
    """Masks secrets in values, mappings and text; remembers the secret values it has seen.

    One redactor lives as long as its tracker, so a key first met in a spec is also masked when it is later
    echoed in a status log line.
    """

    def __init__(self, *, extra_secrets: Iterable[str] = (), include_environment: bool = True) -> None:
        self._literals: set[str] = set()
        for value in extra_secrets:
            self.remember(value)
        if include_environment:
            for name in _ENV_SECRETS:
                self.remember(os.environ.get(name, ""))
            with _registered_lock:
                self._literals |= _registered

    def remember(self, value: Any) -> None:
        """Treat `value` as a secret from now on (ignored when empty or too short to mask safely)."""
        if isinstance(value, (str, bytes)) and len(value) >= _MIN_LITERAL and value != REDACTED:
            self._literals.add(value.decode() if isinstance(value, bytes) else value)

    def secret_values(self) -> tuple[str, ...]:
        """Every secret value remembered so far."""
        return tuple(sorted(self._literals))

    def learn(self, data: Any) -> None:
        """Remember every secret value held under a secret-named key anywhere in `data` (nested)."""
        if isinstance(data, Mapping):
            for key, value in data.items():
                if is_secret_key(str(key)) and isinstance(value, (str, bytes)):
                    self.remember(value)
                else:
                    self.learn(value)
        elif isinstance(data, (list, tuple)):
            for item in data:
                self.learn(item)

    def literals(self, text: str) -> str:
        """Mask only the secret values remembered so far (for text that must keep its syntax, e.g. HTML)."""
        for literal in sorted(self._literals, key=len, reverse=True):
            text = text.replace(literal, REDACTED)
        return text

    def text(self, text: str) -> str:
        """Mask every credential-looking substring of `text`."""
        if not text:
            return text
        text = self.literals(text)
        text = _AWS_ACCESS_KEY_ID.sub(REDACTED, text)
        text = _mask_uri_passwords(text)
        return _SECRET_PAIR.sub(lambda m: m["key"] + m["sep"] + (m["value"] if m["value"] == REDACTED else REDACTED), text)

    def value(self, key: str, value: Any) -> Any:
        """`value` as it may be logged under `key`."""
        if is_secret_key(key):
            if value in (None, "", [], {}):
                return value  # an empty setting reveals nothing and keeps the spec shape honest
            self.remember(value)
            return REDACTED
        return self.data(value)

    def data(self, data: Any) -> Any:
        """A redacted deep copy of a JSON/YAML-like structure (mappings, lists, scalars)."""
        if isinstance(data, Mapping):
            self.learn(data)
            return {key: self.value(str(key), value) for key, value in data.items()}
        if isinstance(data, list):
            return [self.data(item) for item in data]
        if isinstance(data, tuple):
            return tuple(self.data(item) for item in data)
        if isinstance(data, str):
            return self.text(data)
        return data

    def mapping(self, items: Mapping[str, Any]) -> dict[str, Any]:
        """Redact a flat mapping of dotted names (params, tags) by key and by value."""
        return {str(key): self.value(str(key), value) for key, value in items.items()}
