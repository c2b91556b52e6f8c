"""The bearer-token check of the worker's /pair and /top endpoints (WEB_TOKEN)."""

from __future__ import annotations

import pytest

from app.views import bearer_token_matches
from kafka_security import Secret

TOKEN = Secret("tok-3f9a0c1d2e4b5a6978")


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer tok-3f9a0c1d2e4b5a6978", True),
        ("bearer  tok-3f9a0c1d2e4b5a6978 ", True),  # the scheme is case-insensitive
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        ("Bearer tok-3f9a0c1d2e4b5a697", False),  # a prefix
        ("Bearer tok-3f9a0c1d2e4b5a69780", False),
        ("Basic tok-3f9a0c1d2e4b5a6978", False),
        ("tok-3f9a0c1d2e4b5a6978", False),
        ("Bearer t\u00f6k-3f9a0c1d2e4b5a6978", False),  # not ASCII: no TypeError
        ("Bearer tok-3f9a0c1d2e4b5a6978\udcff", False),  # undecodable header bytes
    ],
)
def test_only_the_token_as_a_bearer_token_matches(
    authorization: str | None, expected: bool
) -> None:
    assert bearer_token_matches(authorization, TOKEN) is expected


@pytest.mark.parametrize("authorization", [None, "", "Bearer anything", "Basic x"])
def test_without_a_token_every_request_matches(authorization: str | None) -> None:
    assert bearer_token_matches(authorization, None)
