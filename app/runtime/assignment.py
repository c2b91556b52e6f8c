"""Faust's partition assignor, which keeps the input topic co-partitioned with the worker's state
when partitions are added to it while workers run.

Kafka lets an operator raise the partition count of ``transactions``. Faust's assignor groups
topics by partition count and assigns each group on its own: the input topic, now with more
partitions than the re-keyed topic and the table's changelog, would form a group of its own, and
partition 3 of the input could go to another worker than partition 3 of the table it writes.
This assignor counts only the first TOPIC_PARTITIONS partitions of the input in the
co-partitioned group, and spreads the partitions beyond them over the workers subscribed to it,
as actives only. The detector re-keys every record of those partitions through the internal
topic, keyed or not (app.detector), so no state lives on them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, cast

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from app.settings import Settings


class InputAssignor(PartitionAssignor):
    """Set on the app (``PartitionAssignor=``) with ``configure`` called once at start."""

    input_topic: str = ""
    partitions: int = 0

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.input_topic, cls.partitions = settings.transactions_topic, settings.partitions

    def _perform_assignment(self, cluster: Any, member_metadata: Any) -> Any:
        self._cluster = cluster  # the topics' real partition counts, for the added partitions
        return super()._perform_assignment(cluster, member_metadata)

    @classmethod
    def _get_client_metadata(cls, metadata: Any) -> ClientMetadata:
        """A member's previous assignment without the added partitions: Faust's sticky
        assignment of the group takes them from there and would count them in the group."""
        client = super()._get_client_metadata(metadata)
        for held in (client.assignment.actives, client.assignment.standbys):
            if cls.input_topic in held:
                held[cls.input_topic] = [p for p in held[cls.input_topic] if p < cls.partitions]
        return client

    @classmethod
    def _get_copartitioned_groups(cls, topics: Any, cluster: Any, subscriptions: Any) -> Any:
        view = _CappedCluster(cluster, cls.input_topic, cls.partitions)
        return super()._get_copartitioned_groups(topics, view, subscriptions)

    def _global_table_standby_assignments(
        self, assignments: MutableMapping[str, ClientAssignment], partitions_by_topic: Any
    ) -> MutableMapping[str, ClientAssignment]:
        """Called once the groups are assigned: the added partitions go round the members that
        hold the input topic, one each in turn."""
        assignments = super()._global_table_standby_assignments(assignments, partitions_by_topic)
        found = self._cluster.partitions_for_topic(self.input_topic) or set()
        added = sorted(p for p in found if p >= self.partitions)
        members = sorted(m for m, a in assignments.items() if self.input_topic in a.actives)
        for index, partition in enumerate(added if members else []):
            member = members[index % len(members)]
            assignments[member].actives[self.input_topic].append(partition)
        return assignments


class _CappedCluster:
    """Cluster metadata that shows the input topic with its first ``partitions`` only."""

    def __init__(self, cluster: Any, topic: str, partitions: int) -> None:
        self._cluster, self._topic, self._partitions = cluster, topic, partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        found = cast("set[int] | None", self._cluster.partitions_for_topic(topic))
        if topic != self._topic or found is None:
            return found
        return {p for p in found if p < self._partitions}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)
