"""Scrubbing of AWS credentials from anything we print, log or write to a file.

Our own messages never format credentials, but messages from libraries (botocore, s3transfer, pyarrow)
are folded into ours, and a user may have pasted a key into an endpoint URL. Every message that leaves
`hpo.storage` goes through `redact`, which replaces each credential value known to this process
(environment variables and whatever credentials the caller registered) with a placeholder.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Iterable

PLACEHOLDER = "***"

# Environment variables whose values are credentials (or embed them).
CREDENTIAL_ENV_VARS: tuple[str, ...] = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)

# Values shorter than this are not treated as secrets: replacing e.g. "a" everywhere would mangle text.
_MIN_SECRET_LENGTH = 6

_registered: set[str] = set()
_lock = threading.Lock()

# `scheme://user:password@host` in any URL-looking text.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@")


def register_secret(*values: str | None) -> None:
    """Remember credential values resolved at runtime (e.g. from a profile) so they are redacted too."""
    with _lock:
        for value in values:
            if value and len(value) >= _MIN_SECRET_LENGTH:
                _registered.add(value)


def known_secrets() -> tuple[str, ...]:
    """Every credential value this process knows of, longest first (so overlapping values redact fully)."""
    values: set[str] = set()
    for name in CREDENTIAL_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= _MIN_SECRET_LENGTH:
            values.add(value)
    with _lock:
        values |= _registered
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with every known credential and any URL `user:password@` part replaced by `***`."""
    secrets = list(known_secrets()) + [value for value in extra if value and len(value) >= _MIN_SECRET_LENGTH]
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, PLACEHOLDER)
    return _URL_USERINFO.sub(lambda match: f"{match.group('scheme')}{PLACEHOLDER}@", text)
