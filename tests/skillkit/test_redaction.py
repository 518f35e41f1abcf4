"""One redaction helper for the whole engine: the tracker's `Redactor` and the storage messages' `redact`
share the placeholder, the URI rule and the credentials registered at runtime."""

from __future__ import annotations

import pytest

from hpo.backends.optuna_factory import make_storage
from skillkit.errors import SweepConfigError
from skillkit.redaction import REDACTED, Redactor, redact, register_secret


def test_redact_masks_uri_passwords_and_known_values_and_keeps_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envSecretValue42")
    text = "cannot read s3://bucket/a: token=visible postgresql://alice:pa55word@db:5432/x envSecretValue42 extra-xyz"
    masked = redact(text, extra=["extra-xyz"])
    assert masked == (f"cannot read s3://bucket/a: token=visible postgresql://alice:{REDACTED}@db:5432/x "
                      f"{REDACTED} {REDACTED}")


def test_a_registered_credential_is_masked_by_every_later_redactor() -> None:
    register_secret("RoleSessionSecret-9f3a", None, "", "ab")  # empty and too-short values are ignored
    assert redact("key RoleSessionSecret-9f3a ab") == f"key {REDACTED} ab"
    assert Redactor().text("echo RoleSessionSecret-9f3a") == f"echo {REDACTED}"


def test_an_unreachable_optuna_storage_is_named_without_its_password() -> None:
    with pytest.raises(SweepConfigError) as caught:
        make_storage("postgresql://hpo:s3cr3t-pw@127.0.0.1:1/optuna")
    message = str(caught.value)
    assert "s3cr3t-pw" not in message and f"postgresql://hpo:{REDACTED}@127.0.0.1:1/optuna" in message
