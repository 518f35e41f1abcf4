"""Fixtures for the quantize tests (helpers live in tests/deploy/deploy_fixtures.py)."""

from __future__ import annotations


