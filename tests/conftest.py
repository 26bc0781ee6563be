"""Shared fixtures: one Kafka broker and one SparkSession per test session, and the
local S3 store (SeaweedFS) when a test puts its lake there.

The broker and the store run on free loopback ports with their data in a temporary
folder, so the suite never touches a developer's broker on 9092 or store on 8333.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from meterlake.core.config import Config, load_config
from meterlake.core.location import Location, ObjectPath
from meterlake.core.net import free_port
from meterlake.core.storage import export
from meterlake.infra import broker as kafka_broker
from meterlake.infra import objectstore


@pytest.fixture(scope="session")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    config = load_config()
    home = tmp_path_factory.mktemp("kafka")
    broker = replace(config.broker, home=home, port=free_port(), controller_port=free_port())
    kafka = replace(config.kafka, bootstrap=f"{broker.host}:{broker.port}")
    spark = replace(config.spark, shuffle_partitions=2)
    # the store is started only for the tests that use it (s3_store); the Spark
    # session is told where it will be
    s3 = replace(config.s3, home=tmp_path_factory.mktemp("s3"), port=free_port())
    storage = replace(config.storage, endpoint=objectstore.endpoint(s3))
    return replace(config, broker=broker, kafka=kafka, spark=spark, s3=s3, storage=storage)


@pytest.fixture(scope="session")
def kafka(base_config: Config):
    """The real Apache Kafka broker (KRaft), started once for the session."""
    kafka_broker.start(base_config.broker)
    yield base_config.kafka.bootstrap
    kafka_broker.stop(base_config.broker)


@pytest.fixture(scope="session")
def s3_store(base_config: Config):
    """The real S3-compatible store (SeaweedFS), started once for the session; delta-rs
    in this process gets the [storage] settings, as the command line gives them."""
    objectstore.start(base_config.s3)
    export(base_config.storage)
    yield base_config.s3
    objectstore.stop(base_config.s3)


@pytest.fixture(params=["local", "s3"])
def lake_at(request: pytest.FixtureRequest, tmp_path: Path):
    """Where a test's lakes live, by parameter: lake_at(name) is a folder under tmp_path, or
    a fresh folder in the local S3 store's bucket (started then)."""
    if request.param == "local":
        return lambda name: tmp_path / name
    store = request.getfixturevalue("s3_store")
    run = f"tests/{uuid.uuid4().hex[:12]}"

    def on_store(name: str) -> Location:
        return ObjectPath(store.bucket, f"{run}/{name}")

    return on_store


@pytest.fixture(scope="session")
def spark(base_config: Config):
    from meterlake.core.session import build_session

    session = build_session(base_config)
    yield session
    session.stop()


@pytest.fixture
def config(base_config: Config, tmp_path: Path) -> Config:
    """A fresh lake and a fresh topic per test."""
    topic = f"energy-{uuid.uuid4().hex[:8]}"
    return replace(
        base_config, lake=tmp_path / "lake", kafka=replace(base_config.kafka, topic=topic)
    )


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`spark`, `kafka` and `store` markers from the fixtures a test uses (directly or
    through other fixtures, or a lake on the store by `lake_at`; a test that starts its
    own Spark, broker or store says so itself): `make test-unit` runs what needs none.

    Then the order `make test` hands the tests out in (pytest-xdist, `--dist worksteal`:
    each process takes a contiguous share, and one that runs dry takes half of what
    another has left): the long cases first, the Spark ones next, the pure ones last
    (a stable sort: files keep their order within each kind), dealt alternately
    into the processes' shares, so each starts on long cases and the short ones are
    what gets moved at the end."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for name in ("spark", "kafka"):
            if name in used:
                item.add_marker(name)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "s3_store" in used or params.get("lake_at") == "s3":
            item.add_marker("store")
    ranked = sorted(items, key=_weight)
    jobs = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    items[:] = [item for share in range(jobs) for item in ranked[share::jobs]]


def _weight(item: pytest.Item) -> tuple[int, float]:
    if slow := item.get_closest_marker("slow"):
        return 0, -slow.kwargs.get("minutes", 1)
    return (1 if item.get_closest_marker("spark") or item.get_closest_marker("kafka") else 2), 0
