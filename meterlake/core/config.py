"""Configuration: conf/meterlake.toml (plus the tariff file) as frozen dataclasses.

Loaded once, at the edge (the CLI, the report, a test fixture), and passed in.
`load_config` is the one place precedence is applied, for every setting:
command-line option (--lake, --topic, --bootstrap, -v, then --set section.key=value)
> environment (METERLAKE_*, see ENVIRONMENT) > conf file > the defaults below.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from meterlake.core.catalog import LAYER_TABLES
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import Location, location
from meterlake.core.progress import EVERY_S
from meterlake.core.steps import step_micros

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# The source checkout around this package (tests, bench, the default .jars and the
# report's notebook live there); an installed meterlake has none.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _conf_dir() -> Path:
    """The folder of the default conf files (meterlake.toml, tariff.toml,
    log4j2*.properties). They exist once, in the project's conf/ (the copy users read
    and edit); the wheel ships that folder as the data-only package meterlake.conf
    (pyproject.toml: package-dir maps it to conf/), found here through the import
    system, as an editable install maps it too. A checkout run without installing
    (PYTHONPATH) has no meterlake.conf: its conf/ is beside the package."""
    spec = importlib.util.find_spec("meterlake.conf")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return PROJECT_ROOT / "conf"


CONF_DIR = _conf_dir()
DEFAULT_CONF = CONF_DIR / "meterlake.toml"
# The environment's settings: variable -> the setting it gives (below the command
# line, above the file). Not here: METERLAKE_JARS, where `make setup` put the JVM's
# jars (an install location, like JAVA_HOME: meterlake.core.session.jars_dir).
ENVIRONMENT = {
    "METERLAKE_LAKE": "lake.root",
    "METERLAKE_TOPIC": "kafka.topic",
    "METERLAKE_BOOTSTRAP": "kafka.bootstrap",
    "METERLAKE_KAFKA_SASL_JAAS_CONFIG": "kafka.client.sasl.jaas.config",
    "METERLAKE_PROGRESS_EVERY_S": "progress.every_s",
}


DATA_LOSS_POLICIES = ("fail", "record")
CREDENTIAL_MODES = ("environment", "anonymous")
CONDITIONAL_PUTS = ("etag", "none")
SILVER_SOURCES = ("kafka", "bronze")


def check_choices(section: str, conf: object, **choices: tuple[str, ...]) -> None:
    """MeterlakeError unless each named setting of `conf` is one of its choices."""
    for name, allowed in choices.items():
        if getattr(conf, name) not in allowed:
            raise MeterlakeError(
                f"config [{section}] {name}: {getattr(conf, name)!r} is not one of "
                f"{', '.join(repr(p) for p in allowed)}"
            )


@dataclass(frozen=True)
class KafkaConf:
    bootstrap: str = "127.0.0.1:9092"
    topic: str = "energy"
    partitions: int = 3
    client: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BrokerConf:
    home: Path = Path(".kafka")
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    start_timeout_s: float = 60.0


@dataclass(frozen=True)
class StorageConf:
    """`[storage]`: how to reach the object store of a lake at s3://... (unused for a
    local lake). The defaults reach the store `meterlake s3 start` runs."""

    endpoint: str = "http://127.0.0.1:8333"  # "" = AWS S3 itself (by region)
    region: str = "us-east-1"
    path_style: bool = True  # http://host/bucket/key; false: http://bucket.host/key
    # "environment": AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN)
    # from the environment when set, else unsigned requests (the local store's
    # default); "anonymous": always unsigned.
    credentials: str = "environment"
    # "etag": the store honours If-None-Match on PUT (AWS S3, SeaweedFS, MinIO, ...),
    # so a Delta commit cannot overwrite another's; "none": it does not, and the lake
    # must have one writer (delta-rs's unsafe rename).
    conditional_put: str = "etag"
    connect_timeout_s: float = 5.0  # a store that does not answer: an error this soon

    def __post_init__(self) -> None:
        check_choices("storage", self, credentials=CREDENTIAL_MODES,
                      conditional_put=CONDITIONAL_PUTS)


@dataclass(frozen=True)
class ObjectStoreConf:
    """The local S3-compatible store (`meterlake s3 ...`, meterlake.infra.objectstore)."""

    home: Path = Path(".s3")
    host: str = "127.0.0.1"
    port: int = 8333
    bucket: str = "meterlake"
    volume_size_mb: int = 256
    start_timeout_s: float = 60.0


@dataclass(frozen=True)
class SparkConf:
    master: str = "local[2]"
    app_name: str = "meterlake"
    shuffle_partitions: int = 4
    ui: bool = False
    # The driver's heap. 1 GB holds a bounded batch ([streams] max_offsets_per_trigger):
    # the month's run --once peaked at 1,117 MB of JVM RSS with it, 1,267-1,700 MB with
    # 2 GB (G1 grows the heap it may), in the same time (bench/results/2026-12-07/README.md).
    driver_memory: str = "1g"
    # The driver JVM's own options. C1 only: the C2 compiler's threads cost more CPU
    # than its code saves on 2 cores (bench/results/2026-12-06/README.md). C1 alone
    # gets a 48 MB code cache, which a live run filled in under a minute ("CodeCache is
    # full. Compiler has been disabled"): it gets the tiered default, 240 MB.
    java_options: str = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
    verbose: bool = False  # Spark's and the JVM's own warnings too (`meterlake -v`)
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamsConf:
    bronze: str = "10 seconds"
    silver: str = "10 seconds"
    gold: str = "1 minute"  # all four answers (Q4 every minute, Q1-Q3 at least every 5)
    # The bound on one micro-batch, which the driver holds as Arrow (bronze and silver
    # write from the driver, meterlake.core.commits): Kafka messages per batch, and the
    # bronze files silver reads per batch (their size on disk, Delta's
    # maxBytesPerTrigger; a bronze message is about 16 bytes there).
    max_offsets_per_trigger: int = 100_000
    bronze_bytes_per_trigger: str = "1m"
    # Kafka no longer has offsets bronze had not read (retention, deleted records):
    # "fail" stops bronze with an error; "record" goes on and writes the gap to
    # <lake>/bronze/data_loss.
    on_data_loss: str = "fail"
    # What silver reads: the bronze table ("bronze", the default: everything bronze
    # landed is counted, even what Kafka's retention removed before silver read it)
    # or the topic itself ("kafka": one hop less, fresher answers, and `run --once`
    # catches bronze and silver up side by side; silver then misses what Kafka lost
    # before silver read it, though bronze had it).
    silver_source: str = "bronze"
    # Silver's stateful step is called once per hash bucket of sensor ids and batch,
    # each call judging all the bucket's meters in columns, its state one row holding
    # their windows (silver.bucket). Fixed for a lake's silver checkpoint.
    meter_buckets: int = 32
    # Compaction of the tables streams append to (meterlake.core.compaction): a live run
    # looks every compact_every_s and compacts a table with compact_min_files small
    # files; a catch-up compacts at its end.
    compact_every_s: float = 600.0
    compact_min_files: int = 50
    # Gold's versions: "" one per micro-batch; a step of event time ("1h") one per step,
    # each batch's increments committed step by step (`--step` of replay and run --once).
    gold_step: str = ""

    def __post_init__(self) -> None:
        check_choices("streams", self, on_data_loss=DATA_LOSS_POLICIES,
                      silver_source=SILVER_SOURCES)
        if self.meter_buckets < 1:
            raise MeterlakeError(
                f"config [streams] meter_buckets: {self.meter_buckets} is not a positive count"
            )
        try:
            step_micros(self.gold_step)
        except MeterlakeError as exc:
            raise MeterlakeError(f"config [streams] gold_step: {exc}") from None

    def trigger(self, name: str) -> str:
        return str(getattr(self, name))


@dataclass(frozen=True)
class SemanticsConf:
    zone: str = "Europe/Lisbon"
    min_timestamp: datetime = datetime(2000, 1, 1)
    max_clock_skew_s: float = 86_400.0
    max_power_kw: float = 50.0
    allowed_lateness_s: float = 3_600.0
    tariff: Path = CONF_DIR / "tariff.toml"


@dataclass(frozen=True)
class HealthConf:
    # `query health`: a meter is silent when its latest reading is more than this many
    # of its usual intervals (the median between its readings) behind "now"
    silent_cadences: float = 4.0


@dataclass(frozen=True)
class ProgressConf:
    every_s: float = EVERY_S  # not on a terminal: a plain progress line this often


@dataclass(frozen=True)
class ReadConf:
    """The read side: DuckDB under `query`, `sql`, `serve` and the report."""

    memory_limit: str = "256MB"  # DuckDB's memory_limit per connection (beyond it: spill, or
                                 # one error line); the process stays within about 1 GB
    threads: int = 2  # DuckDB's worker threads per connection
    sql_q3_max_sensors: int = 1000  # `sql`'s wide q3 up to this many columns (else: q3_long)
    page_sensors: int = 10  # the page shows this many largest meters; a picker for others


@dataclass(frozen=True)
class Config:
    lake: Location = Path("lake")
    kafka: KafkaConf = KafkaConf()
    broker: BrokerConf = BrokerConf()
    storage: StorageConf = StorageConf()
    s3: ObjectStoreConf = ObjectStoreConf()
    spark: SparkConf = SparkConf()
    streams: StreamsConf = StreamsConf()
    semantics: SemanticsConf = SemanticsConf()
    progress: ProgressConf = ProgressConf()
    read: ReadConf = ReadConf()
    health: HealthConf = HealthConf()

    def table_path(self, table: str) -> Location:
        """Where a Delta table lives: <lake>/<layer>/<table>."""
        for layer, tables in LAYER_TABLES.items():
            if table in tables:
                return self.lake / layer / table
        known = ", ".join(t for ts in LAYER_TABLES.values() for t in ts)
        raise MeterlakeError(f"unknown table {table!r}; known: {known}")

    def checkpoint(self, query: str) -> Location:
        """Every streaming query has its own checkpoint: <lake>/_checkpoints/<query>."""
        return self.lake / "_checkpoints" / query

    def with_overrides(
        self, lake: str | None = None, topic: str | None = None, bootstrap: str | None = None
    ) -> Config:
        kafka = self.kafka
        if topic:
            kafka = replace(kafka, topic=topic)
        if bootstrap:
            kafka = replace(kafka, bootstrap=bootstrap)
        return replace(self, lake=location(lake) if lake else self.lake, kafka=kafka)


_Conf = TypeVar("_Conf", bound="DataclassInstance")


def _section(
    data: Mapping[str, Any], name: str, cls: type[_Conf], **converters: Callable[[Any], object]
) -> _Conf:
    raw = dict(data.get(name, {}))
    known = {f.name for f in fields(cls)}
    unknown = {k for k in raw if k not in known}
    if unknown:
        raise MeterlakeError(f"config [{name}]: unknown setting(s) {', '.join(sorted(unknown))}")
    # A whole number in the file for a float setting is a float, as its default is and
    # as --set and the environment give it (`timeout_s = 60` is 60.0).
    for f in fields(cls):
        value = raw.get(f.name)
        if isinstance(_field_default(f), float) and type(value) is int:
            raw[f.name] = float(value)
    for key, convert in converters.items():
        if key in raw:
            raw[key] = convert(raw[key])
    return cls(**raw)


SECTIONS: dict[str, type[DataclassInstance]] = {
    "kafka": KafkaConf,
    "broker": BrokerConf,
    "storage": StorageConf,
    "s3": ObjectStoreConf,
    "spark": SparkConf,
    "streams": StreamsConf,
    "semantics": SemanticsConf,
    "progress": ProgressConf,
    "read": ReadConf,
    "health": HealthConf,
}
_LAKE_DEFAULTS: dict[str, object] = {"root": "lake"}


def _setting_value(text: str) -> object:
    """A TOML literal (5000, true, "x", 2024-02-01 00:00:00), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _typed(origin: str, value: object, default: object) -> object:
    def wrong(kind: str) -> MeterlakeError:
        return MeterlakeError(f"{origin}: expected {kind}, not {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        value = float(value)
    elif isinstance(value, dict | list):
        raise wrong("a single value")
    else:  # text, paths and times: as the file would give them
        value = str(value)
    return value


def _setting(name: str, origin: str) -> tuple[str, str, str | None, object]:
    """A setting's name `section.key` (or `section.key.ENTRY` of kafka.client and
    spark.conf), checked against the defaults: section, key, entry, the key's default."""
    parts = name.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise MeterlakeError(f"{origin}: expected section.key=value")
    section, key = parts[0], parts[1]
    if section == "lake":
        defaults: dict[str, object] = _LAKE_DEFAULTS
    elif section in SECTIONS:
        defaults = {f.name: _field_default(f) for f in fields(SECTIONS[section])}
    else:
        known = ", ".join(["lake", *SECTIONS])
        raise MeterlakeError(f"{origin}: unknown section {section!r}; known: {known}")
    if key not in defaults:
        known = ", ".join(defaults)
        raise MeterlakeError(f"{origin}: unknown key {key!r} in [{section}]; known: {known}")
    entry = ".".join(parts[2:]) or None
    if isinstance(defaults[key], dict):
        if entry is None:
            raise MeterlakeError(f"{origin}: name the entry, {section}.{key}.NAME=value")
    elif entry is not None:
        raise MeterlakeError(f"{origin}: [{section}] {key} has no entries")
    return section, key, entry, defaults[key]


def _put(
    data: Mapping[str, Any], name: str, origin: str, value: object, text: bool = False
) -> dict[str, Any]:
    """A copy of `data` with the setting `name` set to `value`, typed by its default;
    `text`: the value is the text of an environment variable (a number or true/false
    read as TOML, anything else taken as it is)."""
    section, key, entry, default = _setting(name, origin)
    if text and (entry is not None or not isinstance(default, bool | int | float)):
        typed = value
    elif entry is not None:
        typed = str(value)
    else:
        typed = _typed(origin, _setting_value(str(value)) if text else value, default)
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    target = data.setdefault(section, {})
    if entry is None:
        target[key] = typed
    else:
        target[key] = {**target.get(key, {}), entry: typed}
    return data


def apply_settings(data: Mapping[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """`--set section.key=value` (repeatable) over the file's data: a copy, each key
    and the type of its value checked against the defaults."""
    data = dict(data)
    for setting in settings:
        name, sep, text = setting.partition("=")
        origin = f"--set {setting}"
        if not sep:
            raise MeterlakeError(f"{origin}: expected section.key=value")
        data = _put(data, name, origin, _setting_value(text.strip()))
    return data


def _field_default(f: Field[object]) -> object:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def load_config(
    path: str | Path | None = None,
    settings: Sequence[str] = (),
    options: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """The configuration, by the one precedence rule: `options` (the command line's own
    flags, by setting: {"lake.root": args.lake, ...}; None or "" is not given) over
    `settings` (--set section.key=value) over the environment (`environ`, default
    os.environ: the variables of ENVIRONMENT, empty ones not counted) over the TOML
    file at `path` (default DEFAULT_CONF) over the dataclasses' defaults."""
    conf_path = Path(path) if path else DEFAULT_CONF
    try:
        data = tomllib.loads(conf_path.read_text())
    except FileNotFoundError:
        raise MeterlakeError(f"config file not found: {conf_path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MeterlakeError(f"config file {conf_path} is not valid TOML: {exc}") from None
    environ = os.environ if environ is None else environ
    for variable, name in ENVIRONMENT.items():
        if environ.get(variable):
            data = _put(data, name, variable, environ[variable], text=True)
    data = apply_settings(data, settings)
    for name, value in (options or {}).items():
        if value is not None and value != "":
            data = _put(data, name, f"option {name}", value)
    base = conf_path.parent
    return Config(
        lake=location(data.get("lake", {}).get("root", "lake")),
        kafka=_section(
            data, "kafka", KafkaConf, client=lambda d: {k: str(v) for k, v in d.items()}
        ),
        broker=_section(data, "broker", BrokerConf, home=Path),
        storage=_section(data, "storage", StorageConf),
        s3=_section(data, "s3", ObjectStoreConf, home=Path),
        spark=_section(data, "spark", SparkConf, conf=lambda d: {k: str(v) for k, v in d.items()}),
        streams=_section(data, "streams", StreamsConf),
        semantics=_section(
            data,
            "semantics",
            SemanticsConf,
            min_timestamp=lambda s: datetime.fromisoformat(str(s)),
            tariff=lambda p: base / p,
        ),
        progress=_section(data, "progress", ProgressConf),
        read=_section(data, "read", ReadConf),
        health=_section(data, "health", HealthConf),
    )
