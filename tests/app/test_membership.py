"""The membership check of app.agents: a worker the consumer group dropped (its session expired
while its event loop ran: a network partition) rejoins under a new member id."""

from __future__ import annotations

from app.agents import Membership


def test_a_worker_dropped_by_the_group_is_told_apart_from_a_rebalance() -> None:
    membership = Membership()
    assert not membership.dropped("a")  # the first assignment
    assert not membership.dropped("a")  # a rebalance it took part in
    assert membership.dropped("b")  # rejoined under a new member id
    assert not membership.dropped("b")
