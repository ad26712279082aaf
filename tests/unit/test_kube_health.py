from __future__ import annotations

import logging

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from mtls_operator.kube.health import ApiHealth, is_outage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (urllib3.exceptions.MaxRetryError(None, "/", "refused"), True),
        (ApiException(status=503), True),
        (ApiException(status=429), True),
        (ConnectionResetError(), True),
        (ApiException(status=404), False),
        (ApiException(status=409), False),
        (ValueError("bug"), False),
    ],
)
def test_what_counts_as_an_outage(exc: Exception, outage: bool) -> None:
    assert is_outage(exc) is outage


def test_one_line_per_outage_and_a_flap_continues_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mtls_operator.kube.health")
    clock = Clock()
    health = ApiHealth(clock)
    for _ in range(50):
        health.failed(ApiException(status=503))
        clock.now += 1
    assert not health.reachable and health.outage_seconds() == 50
    health.succeeded()
    clock.now += 5
    health.failed(ApiException(status=500))  # the API flaps while coming back: same outage, not a new line
    health.succeeded()
    clock.now += 120
    health.failed(ApiException(status=503))  # much later: a new outage
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0].split(" after")[0] for m in messages] == [
        "Kubernetes API unreachable",
        "Kubernetes API reachable again",
        "Kubernetes API unreachable",
    ]
    assert "50 requests failed meanwhile" in messages[1]
