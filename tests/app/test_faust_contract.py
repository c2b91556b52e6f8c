"""What the worker relies on in the installed Faust (see docs/semantics.md), pinned.

If an upgrade of faust-streaming changes one of these, this fails before the pipeline does.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from faust.stores import rocksdb
from faust.tables.base import Collection
from faust.topics import Topic
from faust.transport import producer as base_producer
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as driver
from localkafka import make_certificates

from app import app, settings
from app.app import broker_credentials
from app.runtime.consumer import BatchConsumer
from kafka_security import KafkaSecurity


def test_the_rocksdb_store_runs_on_rocksdict() -> None:
    assert rocksdb.USE_ROCKSDICT
    assert settings.store == "rocksdb://"


def test_a_table_cannot_be_written_outside_an_event() -> None:
    # Why idle partitions get a tick record: table writes need the current event's partition.
    with pytest.raises(RuntimeError, match="outside of agent/stream"):
        Collection._send_changelog(None, None, b"k", b"v")  # type: ignore[arg-type]


def test_sends_are_not_held_until_commit() -> None:
    # Topic.send then returns a future resolved by the broker's acknowledgement.
    assert app.conf.stream_publish_on_commit is False


def test_the_consumer_flushes_the_producer_before_committing() -> None:
    source = inspect.getsource(Consumer._commit_offsets)
    assert source.index("await self.app.producer.flush()") < source.index("await self._commit(")


def test_the_worker_runs_on_uvloop() -> None:
    import asyncio

    import uvloop

    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    make_certificates(directory)
    return directory


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"KAFKA_SECURITY_PROTOCOL": "SSL"},
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SASL_USERNAME": "fraud",
            "KAFKA_SASL_PASSWORD": "pw",
        },
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "fraud",
            "KAFKA_SASL_PASSWORD": "pw",
        },
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "KAFKA_SASL_OAUTH_TOKEN_FILE": "TOKEN_FILE",
        },
        # mutual TLS: the client certificate is in the TLS context, which Faust passes on
        {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CERTFILE": "TLS/clients/admin.crt",
            "KAFKA_SSL_KEYFILE": "TLS/clients/admin.key",
        },
    ],
)
def test_faust_gives_its_clients_the_options_every_other_client_gets(
    env: dict[str, str], tls: Path, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("a.token.")
    env = {
        name: value.replace("TOKEN_FILE", str(tmp_path / "token")).replace("TLS", str(tls))
        for name, value in env.items()
    }
    security = KafkaSecurity.from_env(env)
    faust_options = driver.credentials_to_aiokafka_auth(broker_credentials(security))
    assert faust_options == security.client_options()


def _flat(function: object) -> str:
    return "".join(inspect.getsource(function).split())  # type: ignore[arg-type]


def test_every_kafka_client_faust_makes_gets_the_credentials() -> None:
    # The worker's and a client-only app's consumers, the producer (also the threaded and the
    # transactional ones), and topic creation, which goes through the producer's client.
    auth = "credentials_to_aiokafka_auth(conf.broker_credentials,conf.ssl_context)"
    for make in (
        driver.AIOKafkaConsumerThread._create_worker_consumer,
        driver.AIOKafkaConsumerThread._create_client_consumer,
    ):
        assert auth in _flat(make) and "**auth_settings" in _flat(make)
    assert "self.credentials=conf.broker_credentials" in _flat(base_producer.Producer.__init__)
    assert "credentials_to_aiokafka_auth(self.credentials" in _flat(driver.Producer._settings_auth)
    assert "**self._settings_auth()" in _flat(driver.Producer._new_producer)
    assert "**self._default_producer._settings_auth()" in _flat(
        driver.ThreadedProducer._new_producer
    )
    assert "producer.client," in _flat(driver.Producer.create_topic)
    module = inspect.getsource(driver)
    assert module.count("aiokafka.AIOKafkaConsumer(") == 2
    assert module.count("aiokafka.AIOKafkaProducer(") + module.count("self._producer_type(") == 2
    assert "AIOKafkaClient(" not in module and "AIOKafkaAdminClient(" not in module


def test_the_table_store_takes_the_rocksdb_memory_settings() -> None:
    # Faust's defaults (64 MB memtables x 3, a 2 GiB block cache) apply to each partition's DB.
    from app.agents import pair_windows

    options = pair_windows.data.rocksdb_options
    assert options.write_buffer_size == settings.rocksdb_write_buffer_mb * 2**20
    assert options.max_write_buffer_number == 2
    assert options.block_cache_size == settings.rocksdb_block_cache_mb * 2**20
    assert options.as_options() is not None  # rocksdict accepts them


def test_the_undelivered_batch_count_reads_attributes_aiokafka_has() -> None:
    # app/localstate.undelivered_batches reads the accumulator of Faust's aiokafka producer
    import aiokafka
    from aiokafka.producer.message_accumulator import MessageAccumulator

    from app.runtime.localstate import undelivered_batches

    assert "_producer" in inspect.getsource(driver.Producer.on_stop)
    init = inspect.getsource(aiokafka.AIOKafkaProducer.__init__)
    assert "self._message_accumulator = MessageAccumulator(" in init
    source = inspect.getsource(MessageAccumulator.__init__)
    assert "self._batches = " in source and "self._pending_batches = set()" in source
    assert undelivered_batches(object()) == 0


async def test_an_undelivered_record_crashes_the_worker_once() -> None:
    # Faust only logs a record it could not send; a lost changelog record must stop the worker
    import asyncio
    import logging

    from app.app import SendFailures

    class FakeApp:
        log = logging.getLogger("fake")

        def __init__(self) -> None:
            self.crashes: list[BaseException] = []

        async def crash(self, reason: BaseException) -> None:
            self.crashes.append(reason)

    fake = FakeApp()
    sensor = SendFailures(fake)  # type: ignore[arg-type]
    error = RuntimeError("request timed out")
    sensor.on_send_error(None, error, None)
    sensor.on_send_error(None, RuntimeError("again"), None)
    await asyncio.sleep(0)
    assert fake.crashes == [error]
    assert sensor.failed == 2
    assert app.send_failures in app.sensors  # type: ignore[attr-defined]


def test_the_table_s_store_and_restore_are_what_the_batched_writes_rely_on() -> None:
    # app.runtime.state writes the store Faust's recovery, standbys and CLI read: one RocksDB
    # per partition, raw keys and values, the offset to restore from under Faust's key
    from app.agents import pair_windows
    from app.runtime.fencing import FencedTable

    assert isinstance(pair_windows, FencedTable)
    assert isinstance(pair_windows.data, rocksdb.Store)
    assert "db_options = Options(raw_mode=True)" in inspect.getsource(
        rocksdb.RocksDBOptions.as_options
    )
    assert "self.offset_key" in inspect.getsource(rocksdb.Store.set_persisted_offset)
    assert "self._dbs[partition] = self._open_for_partition" in inspect.getsource(
        rocksdb.Store._db_for_partition
    )
    # a read without an event (web views, commands) looks the key up in every partition
    assert "self._dbs.items()" in inspect.getsource(rocksdb.Store._get_bucket_for_key)
    # a restore (and a standby) applies the changelog through the table, with its headers
    from faust.tables.recovery import Recovery

    assert "table.apply_changelog_batch(" in inspect.getsource(Recovery._slurp_changelogs.fun)
    to_message = inspect.getsource(driver.Consumer._to_message)
    assert "record.headers" in to_message and "record.timestamp_type" in to_message


def test_the_progress_watch_reads_what_faust_keeps() -> None:
    # app.agents.watch_progress: the recovery's offsets
    from faust.tables.recovery import Recovery

    init = inspect.getsource(Recovery.__init__)
    for name in ("self.active_offsets = ", "self.active_highwaters = "):
        assert name in init
    assert "self.in_recovery = True" in inspect.getsource(Recovery._set_recovery_started)
    # app.agents.tick_idle_partitions: the committed offset an assignment starts from
    assert "self._committed_offset.update(" in inspect.getsource(Consumer.perform_seek)
    assert "self._committed_offset.update(" in inspect.getsource(Consumer._commit_offsets)
    # app.agents._stuck_input: no input is processed while the group rebalances, and the flag
    # can stay set: a recovery that finds a newer generation returns before ending the rebalance
    assert "self.rebalancing = True" in inspect.getsource(type(app).on_rebalance_start)
    assert "self.rebalancing = False" in inspect.getsource(type(app).on_rebalance_end)
    completed = inspect.getsource(Recovery.on_recovery_completed)
    assert completed.index("Recovery rebalancing again") < completed.index("return")
    assert completed.index("return") < completed.index("self.app.on_rebalance_end()")
    # how long Kafka lets a rebalance last: app.conf.broker_rebalance_timeout
    create = inspect.getsource(driver.AIOKafkaConsumerThread._create_worker_consumer)
    assert "rebalance_timeout = conf.broker_rebalance_timeout" in create
    assert "rebalance_timeout_ms=int(rebalance_timeout * 1000.0)" in create
    # app.agents._tell_consumer_state: what the consumer keeps per partition
    consumer_init = inspect.getsource(Consumer.__init__)
    for name in ("self._committed_offset = ", "self._read_offset = "):
        assert name in consumer_init


def test_faust_s_flush_can_leave_records_in_its_buffer() -> None:
    # why app.runtime.producer.DeliveringProducer waits for every record itself: Faust's
    # buffer flush returns after 0.1 s without a send, with records still waiting
    from faust.transport.producer import ProducerBuffer

    from app.runtime.producer import DeliveringProducer

    source = inspect.getsource(ProducerBuffer.flush_atmost)
    assert "timeout=0.1" in source and "except asyncio.TimeoutError:" in source
    assert isinstance(app.producer, DeliveringProducer)
    assert app.transport.Producer is driver.Producer  # the class it extends
    assert "self.buffer.put(fut)" in inspect.getsource(base_producer.Producer.send_soon)
    assert "self.app.producer.send_soon(fut)" in inspect.getsource(Topic.send_soon)


def test_the_seek_at_the_end_of_a_rebalance_rests_on_what_aiokafka_has() -> None:
    # app.runtime.consumer.ConsumerThread._seek_to_committed: Faust's end of a rebalance
    # (Recovery -> perform_seek) goes through seek_to_committed; the committed offsets are read
    # in one request (no entry for a partition never committed), and the fetcher's seeks wait
    # for nothing
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    assert "await self.seek_to_committed()" in inspect.getsource(Consumer.perform_seek)
    assert app.consumer.seek_to_committed.__func__ is BatchConsumer.seek_to_committed
    fetch = inspect.getsource(GroupCoordinator._do_fetch_commit_offsets)
    assert "if offset == UNKNOWN_OFFSET:" in fetch
    assert "offsets[tp] = OffsetAndMetadata(offset, metadata)" in fetch
    assert not inspect.iscoroutinefunction(Fetcher.seek_to)
    # Faust's livelock check reads every assigned partition's position, which a reset to the
    # beginning leaves unset while it waits: the seek goes to the beginning offsets instead
    assert "committed_offset = tp_state.position" in inspect.getsource(
        driver.AIOKafkaConsumerThread.verify_event_path
    )


def test_a_callback_the_flow_s_suspension_cancelled_is_not_among_the_winners() -> None:
    # app.runtime.consumer.BatchConsumer._one_by_one stops at a changelog record whose
    # callback did not finish: mode's wait_first lists the awaitables that finished, by the
    # objects it was given, and cancels the others
    from mode import Service
    from mode.services import WaitResults

    assert WaitResults._fields == ("done", "results", "stopped")
    source = inspect.getsource(Service.wait_first)
    assert "winners.append(coro)" in source
    assert "fut.cancel()" in source


def test_the_batch_consumer_replaces_the_fetch_loop_and_the_commit_bookkeeping() -> None:
    # app.runtime.consumer.BatchConsumer: Faust's fetcher runs the consumer's _drain_messages,
    # whose records come from _wait_next_records (which waits while the flow is stopped)
    from faust.transport.consumer import Fetcher

    assert "await consumer._drain_messages(self)" in inspect.getsource(Fetcher._fetcher.fun)
    wait_next = inspect.getsource(Consumer._wait_next_records)
    assert "await self.wait(self.can_resume_flow)" in wait_next
    assert "return records, active_partitions" in wait_next
    assert "to_message(tp, record)" in inspect.getsource(Consumer.getmany)
    # commits go through the two methods it overrides, and flush the producer first
    assert "self._filter_tps_with_pending_acks(topics)" in inspect.getsource(Consumer.force_commit)
    committable = inspect.getsource(Consumer._filter_committable_offsets)
    assert "offset = self._new_offset(tp)" in committable
    commit = inspect.getsource(Consumer._commit_offsets)
    assert commit.index("await self.app.producer.flush()") < commit.index("await self._commit(")
    # a revocation reaches it through on_partitions_revoked, before Faust commits and flushes
    from faust.transport.consumer import ThreadDelegateConsumer

    assert issubclass(BatchConsumer, ThreadDelegateConsumer)
    assert "self.on_partitions_revoked" in inspect.getsource(
        ThreadDelegateConsumer.threadsafe_partitions_revoked
    )
    revoked = inspect.getsource(type(app)._on_partitions_revoked)
    assert revoked.index("_consumer_wait_empty") < revoked.index("_producer_flush")
    assert "await self.commit()" in inspect.getsource(Consumer.wait_empty) or (
        "await T(self.commit)()" in inspect.getsource(Consumer.wait_empty)
    )
    assert app.consumer.wait_empty.__func__ is BatchConsumer.wait_empty  # type: ignore[attr-defined]
    # Faust's livelock check reads when each partition's stream last took a record
    check = inspect.getsource(driver.AIOKafkaConsumerThread.verify_event_path)
    assert "inbound = monitor.stream_inbound_time.get(tp)" in check


def test_faust_s_table_routing_forwards_the_request_s_headers() -> None:
    # The bearer token of /pair reaches the worker owning the key because Faust's routing
    # sends the request's headers along (app.views.requires_token checks it before routing).
    from faust.app.router import Router

    source = inspect.getsource(Router._route_req)
    assert "headers=request.headers" in source


def test_exactly_once_rests_on_what_faust_and_aiokafka_do() -> None:
    # app.runtime.transactions and app.runtime.consumer under PROCESSING_GUARANTEE=exactly_once
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.producer.message_accumulator import MessageAccumulator

    # the consumer's isolation level is read when it starts, from the attribute it is set on
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)
    assert "isolation_level=isolation_level" in inspect.getsource(
        driver.AIOKafkaConsumerThread._create_worker_consumer
    )
    # a record batch sent to a transactional producer joins its transaction
    assert "maybe_add_partition_to_txn(tp)" in inspect.getsource(MessageAccumulator._append_batch)
    assert "group_id" in inspect.signature(AIOKafkaProducer.send_offsets_to_transaction).parameters
    # Faust's transactional producers are Faust's own settings plus a transactional id
    assert "**self._settings_auth()" in inspect.getsource(driver.Producer._new_producer)
    # the assigned signal comes after Faust's recovery started (tables.on_rebalance): the
    # producers start in the consumer's on_partitions_assigned instead, before that chain
    assigned = inspect.getsource(type(app)._on_partitions_assigned)
    assert assigned.index("self.tables.on_rebalance") < assigned.index(
        "on_partitions_assigned.send"
    )
    assert "self._on_partitions_assigned," in inspect.getsource(Consumer.on_partitions_assigned)
    assert app.consumer._on_partitions_assigned == app._on_partitions_assigned
    # a transaction ended by an error in the background sender (fenced) keeps it in the
    # manager's waiter, read by app.runtime.transactions.ended_by
    from aiokafka.producer.transaction_manager import TransactionManager

    manager = inspect.getsource(TransactionManager)
    assert "self._transaction_waiter.set_exception(exc)" in manager
    assert "self._txn_manager = TransactionManager(" in inspect.getsource(AIOKafkaProducer)
    # app.runtime.producer.TransactionalProducer replaces the sender the producer made, before
    # it starts; aiokafka's coordinator lookup wraps the errors it does not retry, the closed
    # connection among them, and CoordinatorRetryingSender retries what it wrapped
    from aiokafka.producer.sender import Sender

    assert "self._sender = Sender(" in inspect.getsource(AIOKafkaProducer.__init__)
    assert "self._sender.start()" in inspect.getsource(AIOKafkaProducer.start)
    assert "raise KafkaError(repr(err)) from err" in inspect.getsource(Sender._find_coordinator)


def test_faust_reads_no_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # app.app passes env={}: Faust's environment names overlap the project's (app.settings)
    import faust

    monkeypatch.setenv("PROCESSING_GUARANTEE", "exactly_once")
    assert faust.App("probe").conf.processing_guarantee.value == "exactly_once"
    assert faust.App("probe", env={}).conf.processing_guarantee.value == "at_least_once"
    assert app.conf.env == {}
    assert not app.in_transaction


def test_the_member_id_is_where_the_membership_check_reads_it() -> None:
    # app.agents.on_assigned: aiokafka's group coordinator holds the member id, and forgets it
    # (UNKNOWN_MEMBER_ID) when the group dropped the worker, before it rejoins under a new one
    from aiokafka import AIOKafkaConsumer
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    assert "self._coordinator = GroupCoordinator(" in inspect.getsource(AIOKafkaConsumer.start)
    reset = inspect.getsource(GroupCoordinator.reset_generation)
    assert "self.member_id = JoinGroupRequest.UNKNOWN_MEMBER_ID" in reset
    assert "return self._consumer" in inspect.getsource(
        driver.AIOKafkaConsumerThread._ensure_consumer
    )
