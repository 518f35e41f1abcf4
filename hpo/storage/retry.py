"""Retries with exponential backoff around whole storage operations.

Two layers retry, on purpose. botocore retries each HTTP request (`RetryPolicy.botocore_config`), which
covers throttling and 5xx answers to single calls. It cannot help when a failure escapes a compound
operation: a managed transfer whose parts keep failing, a listing that breaks on page 7, a streaming body
cut mid-read. `call_with_retries` repeats the whole operation for those, with capped exponential
backoff and jitter, and gives up with a `StorageError` that says how many attempts were made.
Only failures `failures.is_transient` accepts are retried; a missing object or a denied request fails at
once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hpo.storage.failures import describe_failure, is_transient, storage_error, unwrap
from skillkit.errors import StorageError
from skillkit.redaction import redact

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How persistent to be with a flaky store.

    `max_attempts` whole-operation attempts, each made of up to `botocore_max_attempts` HTTP attempts by
    botocore's 'standard' retry mode. Between whole attempts we sleep
    `min(max_delay, initial_delay * 2**(attempt - 1))`, scaled by a random factor in [0.5, 1] so that many
    workers hitting the same throttled bucket spread out.
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 20.0
    botocore_max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.botocore_max_attempts < 1:
            raise StorageError(
                f"retry attempts must be >= 1, but got max_attempts={self.max_attempts}, "
                f"botocore_max_attempts={self.botocore_max_attempts}."
            )
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise StorageError(
                f"retry delays must satisfy 0 <= initial_delay <= max_delay, but got "
                f"initial_delay={self.initial_delay}, max_delay={self.max_delay}."
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_delay, self.initial_delay * (2 ** (attempt - 1)))
        return base * random.uniform(0.5, 1.0)

    def botocore_config(self) -> dict:
        """The `retries` argument of `botocore.config.Config` for the per-request layer."""
        return {"mode": "standard", "total_max_attempts": self.botocore_max_attempts}


def call_with_retries(
    operation: Callable[[], T],
    *,
    uri: str,
    action: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `operation`, repeating it on transient failures; any failure ends as a `StorageError`.

    `uri` and `action` only name the operation in messages ("cannot download s3://b/k after 4 attempts:
    the server failed temporarily (HTTP 503, SlowDown)").
    """
    attempt = 1
    while True:
        try:
            return operation()
        except StorageError:
            raise
        except Exception as raised:  # noqa: BLE001 - every library failure becomes a StorageError below
            error = unwrap(raised)
            if not is_transient(error):
                raise storage_error(uri, action, error) from error
            if attempt >= policy.max_attempts:
                raise storage_error(uri, action, error, attempts=attempt) from error
            wait = policy.delay(attempt)
            logger.warning(
                redact(
                    f"{action} {uri}: attempt {attempt}/{policy.max_attempts} failed "
                    f"({describe_failure(error)}); retrying in {wait:.2f}s"
                )
            )
            sleep(wait)
            attempt += 1
