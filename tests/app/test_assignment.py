"""The assignor that keeps the input co-partitioned with the state when partitions are added
to the input topic (app.runtime.assignment), and the Faust methods it relies on, pinned."""

from __future__ import annotations

import inspect
import json
from typing import Any

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment

from app import app
from app.runtime.assignment import InputAssignor, _CappedCluster

INPUT = "transactions-test"


class Cluster:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.counts[topic])) if topic in self.counts else None

    def topics(self) -> set[str]:
        return set(self.counts)


class Assignor(InputAssignor):
    input_topic, partitions = INPUT, 8


def assignor(counts: dict[str, int]) -> InputAssignor:
    assignor = Assignor(app)
    assignor._cluster = Cluster(counts)
    return assignor


def test_the_app_uses_it() -> None:
    assert isinstance(app.assignor, InputAssignor)
    assert app.assignor.partitions == 8


def test_the_input_counts_with_its_first_partitions_only() -> None:
    view = _CappedCluster(Cluster({INPUT: 12, "pairs": 8}), INPUT, 8)
    assert view.partitions_for_topic(INPUT) == set(range(8))
    assert view.partitions_for_topic("pairs") == set(range(8))
    assert view.partitions_for_topic("absent") is None
    assert view.topics() == {INPUT, "pairs"}  # the rest is the cluster's own


def test_the_input_and_the_state_stay_in_one_group() -> None:
    cluster = Cluster({INPUT: 11, "pairs": 8, "pair-windows-changelog": 8})
    subscriptions = {"a": list(cluster.counts), "b": list(cluster.counts)}
    groups = assignor(cluster.counts)._get_copartitioned_groups(
        set(cluster.counts), cluster, subscriptions
    )
    assert list(groups) == [8]
    assert [sorted(g) for g in groups[8]] == [sorted(cluster.counts)]


def test_added_partitions_go_round_the_members_that_hold_the_input() -> None:
    members = {
        "b": ClientAssignment(actives={INPUT: [1, 3], "pairs": [1, 3]}, standbys={}),
        "a": ClientAssignment(actives={INPUT: [0, 2], "pairs": [0, 2]}, standbys={}),
        "c": ClientAssignment(actives={}, standbys={}),  # more workers than partitions
    }
    out = assignor({INPUT: 11})._global_table_standby_assignments(members, {})
    assert out["a"].actives[INPUT] == [0, 2, 8, 10]
    assert out["b"].actives[INPUT] == [1, 3, 9]
    assert out["b"].actives["pairs"] == [1, 3]
    assert out["c"].actives == {}


def test_a_previous_assignment_of_added_partitions_is_not_taken_for_the_group() -> None:
    one = assignor({INPUT: 10})
    member: Any = type("Meta", (), {})()
    assignment = {"actives": {INPUT: [0, 9], "pairs": [0]}, "standbys": {}}
    member.user_data = json.dumps(
        {"assignment": assignment, "url": "http://a:1", "changelog_distribution": {}}
    ).encode()
    client = one._get_client_metadata(member)
    assert client.assignment.actives == {INPUT: [0], "pairs": [0]}


def test_the_faust_methods_it_overrides_are_there_as_it_expects() -> None:
    source = inspect.getsource(PartitionAssignor._perform_assignment)
    # the groups first, from the cluster's partition counts; then the global tables' hook,
    # with the members' assignments, before they become Kafka's protocol assignments
    assert source.index("self._get_client_metadata(metadata)") < source.index(
        "self._get_copartitioned_groups("
    )
    assert source.index("self._get_copartitioned_groups(") < source.index(
        "self._global_table_standby_assignments("
    )
    assert source.index("self._global_table_standby_assignments(") < source.index(
        "self._protocol_assignments("
    )
    groups = inspect.getsource(PartitionAssignor._get_copartitioned_groups)
    assert "cluster.partitions_for_topic(topic)" in groups
