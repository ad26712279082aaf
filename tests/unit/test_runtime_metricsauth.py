"""runtime.metricsauth: 401 without a token the apiserver accepts, 403 without RBAC's `get /metrics`, answers kept a
minute per token, and a flood of made-up tokens bounded in memory."""

from __future__ import annotations

from typing import Any

from mtls_operator.runtime import metricsauth
from mtls_operator.runtime.metricsauth import MetricsAuthorizer


class Reviews:
    """The two reviews as the apiserver answers them, counted."""

    def __init__(self) -> None:
        self.users = {"prom-token": "system:serviceaccount:monitoring:prometheus", "nosy-token": "nosy"}
        self.allowed = {"system:serviceaccount:monitoring:prometheus"}
        self.calls = 0
        self.down = False

    async def review_token(self, token: str) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise ConnectionError("apiserver unreachable")
        user = self.users.get(token)
        return {"authenticated": True, "user": {"username": user}} if user else {"authenticated": False}

    async def review_access(self, user: dict[str, Any], path: str, verb: str) -> bool:
        assert (path, verb) == ("/metrics", "get")
        return user["username"] in self.allowed


async def test_who_gets_what() -> None:
    reviews = Reviews()
    auth = MetricsAuthorizer(reviews)  # type: ignore[arg-type]
    assert await auth.status_for(None) == 401
    assert await auth.status_for("Basic abc") == 401
    assert await auth.status_for("Bearer ") == 401
    assert await auth.status_for("Bearer made-up") == 401
    assert await auth.status_for("Bearer nosy-token") == 403
    assert await auth.status_for("Bearer prom-token") == 200
    calls = reviews.calls
    assert await auth.status_for("Bearer prom-token") == 200 and reviews.calls == calls  # kept, not asked again


async def test_an_outage_is_said_and_not_remembered() -> None:
    reviews = Reviews()
    auth = MetricsAuthorizer(reviews)  # type: ignore[arg-type]
    reviews.down = True
    assert await auth.status_for("Bearer prom-token") == 503
    reviews.down = False
    assert await auth.status_for("Bearer prom-token") == 200


async def test_a_flood_of_made_up_tokens_keeps_memory_bounded() -> None:
    auth = MetricsAuthorizer(Reviews())  # type: ignore[arg-type]
    for i in range(metricsauth.MAX_ENTRIES * 3):
        assert await auth.status_for(f"Bearer junk-{i}") == 401
    assert len(auth._answers) == metricsauth.MAX_ENTRIES
