"""Fixtures for the deploy tests (helpers live beside this file in deploy_fixtures.py)."""

from __future__ import annotations


