"""The fault tests: the fast ones run with the suite; the long harness runs (marked
``harness``) only when asked, as root on a machine with PostgreSQL's tools and ``faketime``::

    TUNER_FAULT_HARNESS=1 python -m pytest tests/faults -m harness -s

``-s`` shows each scenario's figures (faults injected, trials settled, lost, doubled, late
results refused)."""

from __future__ import annotations

import os

import pytest

HARNESS_ENV = "TUNER_FAULT_HARNESS"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(HARNESS_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"a long fault-harness run: set {HARNESS_ENV}=1 "
                            "(python -m pytest tests/faults -m harness)")
    for item in items:
        if "harness" in item.keywords:
            item.add_marker(skip)
