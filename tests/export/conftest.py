"""Fixtures for the export tests (helpers live in tests/deploy/deploy_fixtures.py)."""

from __future__ import annotations


