"""The `meterlake` command line (contract: shared spec interface.md)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from meterlake.core.config import Config, load_config
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import on_object_store
from meterlake.core.steps import parse_step
from meterlake.core.storage import export, unreachable

log = logging.getLogger("meterlake")

VIEWS = ("q1", "q2", "q3", "q4", "q3_long")  # q3_long: q3 in long form, for scripts
MORE_VIEWS = ("plans", "bill", "health")  # meterlake.read.questions
PROJECTION = "projection"  # meterlake.read.projection
FORMATS = ("table", "csv", "json")


def _parser() -> argparse.ArgumentParser:
    # Global options work before or after the subcommand; SUPPRESS keeps the
    # subcommand's parser from resetting what was given before it.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--conf", help="configuration file (default: conf/meterlake.toml "
                        "as meterlake ships it)")
    common.add_argument("--lake", help="root of the Delta tables (env METERLAKE_LAKE)")
    common.add_argument("--topic", help="Kafka topic (env METERLAKE_TOPIC)")
    common.add_argument("--bootstrap", help="Kafka bootstrap servers (env METERLAKE_BOOTSTRAP)")
    common.add_argument(
        "--set",
        dest="settings",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="set one configuration value for this command, e.g. "
        "--set semantics.max_power_kw=5000 (repeatable; any key of conf/meterlake.toml)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log more: meterlake's INFO lines, and Spark's and Kafka's own warnings",
    )

    parser = argparse.ArgumentParser(
        prog="meterlake",
        parents=[common],
        description="Streaming lakehouse for residential energy meters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kafka = sub.add_parser("kafka", parents=[common], help="the local Kafka broker")
    kafka.add_argument("action", choices=("start", "stop", "status"))

    s3 = sub.add_parser("s3", parents=[common], help="the local S3-compatible store "
                        "(then --lake s3://meterlake/NAME)")
    s3.add_argument("action", choices=("start", "stop", "status"))

    gen = sub.add_parser("generate", parents=[common], help="a synthetic month of readings")
    gen.add_argument("--out", required=True, help="output file (timestamp;sensor_id;energy)")
    gen.add_argument("--meters", type=int, default=11)
    gen.add_argument("--days", type=int, default=29)
    gen.add_argument("--start", default="2024-02-01", help="first day, YYYY-MM-DD")
    gen.add_argument("--cadence", type=float, default=60.0, help="seconds between readings")
    gen.add_argument("--seed", type=int, default=42)

    pub = sub.add_parser("publish", parents=[common], help="replay a readings file into Kafka")
    pub.add_argument("--filename", required=True)
    pub.add_argument(
        "--speedup",
        type=float,
        default=60.0,
        help="times faster than real time; 0 = as fast as possible",
    )
    pub.add_argument(
        "--no-key",
        dest="keyed",
        action="store_false",
        help="send the JSON value without a key, as the course's publisher does "
        "(one sensor's readings then land on every partition)",
    )

    run = sub.add_parser("run", parents=[common], help="the bronze, silver and gold jobs")
    run.add_argument("--layers", default="bronze,silver,gold")
    run.add_argument("--once", action="store_true", help="catch up on everything, then exit")
    run.add_argument(
        "--step",
        metavar="DURATION",
        help="with --once: a gold version per step of event time (e.g. 1h, 1d)",
    )

    query = sub.add_parser("query", parents=[common], help="the sorted view of one question")
    query.add_argument("view", choices=(*VIEWS, *MORE_VIEWS, PROJECTION))
    query.add_argument("--format", choices=FORMATS, default="table")
    when = query.add_mutually_exclusive_group()
    when.add_argument("--version", type=int, help="gold table version (time travel)")
    when.add_argument("--as-of", dest="as_of", help="gold as of this timestamp (time travel)")
    when.add_argument(
        "--at",
        metavar="TIME",
        help="the answer as it stood at this event time, e.g. '2024-02-10 14:00' (local)",
    )
    query.add_argument(
        "--sensor",
        action="append",
        default=[],
        metavar="ID",
        help="only this sensor (repeat for more); bound as a parameter",
    )

    sql = sub.add_parser("sql", parents=[common], help="read-only SQL over the lake")
    sql.add_argument("statement")
    sql.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="bind VALUE to $NAME in the statement (repeatable)",
    )
    sql.add_argument("--format", choices=FORMATS, default="table")

    hist = sub.add_parser("history", parents=[common], help="Delta history of a table")
    hist.add_argument("table")

    replay = sub.add_parser(
        "replay", parents=[common], help="fresh topic, publish, run --once, views"
    )
    replay.add_argument("file")
    replay.add_argument(
        "--step",
        metavar="DURATION",
        help="a gold version per step of event time (e.g. 1h, 1d), for query --at",
    )

    serve = sub.add_parser(
        "serve", parents=[common], help="a live web page of the four answers, and a JSON API"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    serve.add_argument("--port", type=int, default=8050)

    sub.add_parser("demo", parents=[common], help="generate a month, run it all, show the answers")

    report = sub.add_parser("report", parents=[common], help="the report notebook as HTML")
    report.add_argument("--out", default="build/energy_report.html", help="HTML file to write")
    return parser


def _config(args: argparse.Namespace) -> Config:
    """The configuration of this command (the precedence: meterlake.core.config)."""
    options = {
        "lake.root": getattr(args, "lake", None),
        "kafka.topic": getattr(args, "topic", None),
        "kafka.bootstrap": getattr(args, "bootstrap", None),
        "spark.verbose": True if getattr(args, "verbose", False) else None,
    }
    config = load_config(getattr(args, "conf", None), getattr(args, "settings", None) or (),
                         options)
    if on_object_store(config.lake):
        export(config.storage)  # delta-rs (and DuckDB through it) read these
    return config


def _local_server(server: ModuleType, conf: object, action: str, name: str) -> None:
    """start / stop / status of a local server (the Kafka broker, the S3 store)."""
    if action == "start":
        print(server.start(conf).describe())
    elif action == "stop":
        print(f"{name} stopped" if server.stop(conf) else f"{name} was not running")
    else:
        print(server.status(conf).describe())


def _kafka(config: Config, args: argparse.Namespace) -> None:
    from meterlake.infra import broker

    _local_server(broker, config.broker, args.action, "kafka broker")


def _s3(config: Config, args: argparse.Namespace) -> None:
    from meterlake.infra import objectstore

    _local_server(objectstore, config.s3, args.action, "s3 store")


def _generate(config: Config, args: argparse.Namespace) -> None:
    from meterlake.tools.generate import MonthSpec, write_readings

    spec = MonthSpec(
        meters=args.meters,
        days=args.days,
        start=args.start,
        cadence_s=args.cadence,
        seed=args.seed,
    )
    count = write_readings(spec, Path(args.out))
    print(f"wrote {count:,} readings to {args.out}")


def _publish(config: Config, args: argparse.Namespace) -> None:
    from meterlake.tools.publish import publish_file

    publish_file(config, Path(args.filename), speedup=args.speedup, keyed=args.keyed)


def _run(config: Config, args: argparse.Namespace) -> None:
    from meterlake.app.pipeline import run

    if args.step is not None:
        if not args.once:
            raise MeterlakeError("--step is for a catch-up: run --once --step DURATION")
        from meterlake.app.replay import with_step

        config = with_step(config, parse_step(args.step))
    run(config, layers=[x.strip() for x in args.layers.split(",") if x.strip()], once=args.once)


def _query(config: Config, args: argparse.Namespace) -> None:
    from meterlake.app.output import print_result
    from meterlake.read.answers import query_view

    if args.view in (*MORE_VIEWS, PROJECTION):
        if args.at is not None or args.sensor:
            raise MeterlakeError(f"query {args.view}: --at and --sensor are for q1..q4")
        if args.view == PROJECTION:
            from meterlake.read.projection import query_projection

            if args.version is not None or args.as_of is not None:
                raise MeterlakeError("query projection: the projection is of gold as it is now")
            print_result(query_projection(config), args.format)
            return
        from meterlake.read.questions import query_more

        print_result(query_more(config, args.view, args.version, args.as_of), args.format)
        return
    result = query_view(
        config,
        args.view,
        version=args.version,
        as_of=args.as_of,
        sensors=args.sensor,
        at=args.at,
    )
    print_result(result, args.format)


def _sql(config: Config, args: argparse.Namespace) -> None:
    from meterlake.app.output import print_sql
    from meterlake.read.sandbox import parse_parameters

    print_sql(config, args.statement, parse_parameters(args.param), args.format)


def _history(config: Config, args: argparse.Namespace) -> None:
    from meterlake.app.output import print_result
    from meterlake.read.history import history

    print_result(history(config, args.table), "table")


def _replay(config: Config, args: argparse.Namespace) -> None:
    from meterlake.app.replay import replay

    step = None if args.step is None else parse_step(args.step)
    replay(config, Path(args.file), step=step)


def _serve(config: Config, args: argparse.Namespace) -> None:
    from meterlake.app.web import serve

    serve(config, args.host, args.port)


def _demo(config: Config, args: argparse.Namespace) -> None:
    from meterlake.app.replay import demo

    demo(config)


def _report(config: Config, args: argparse.Namespace) -> None:
    from nbclient.exceptions import CellExecutionError

    from meterlake.read.report import render_report

    try:
        lake = config.lake.resolve() if isinstance(config.lake, Path) else config.lake
        print(f"wrote {render_report(lake, Path(args.out))}")
    except CellExecutionError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "a cell failed"
        raise MeterlakeError(f"the report notebook failed: {first}") from None


COMMANDS = {
    "kafka": _kafka,
    "s3": _s3,
    "generate": _generate,
    "publish": _publish,
    "run": _run,
    "query": _query,
    "sql": _sql,
    "history": _history,
    "replay": _replay,
    "serve": _serve,
    "demo": _demo,
    "report": _report,
}


# Commands that start something (a broker, a topic, queries, a server): a bad tariff
# file is one line before any of it.
STARTS = ("run", "replay", "demo", "serve")


def _not_from_py4j(record: logging.LogRecord) -> bool:
    return f"{os.sep}py4j{os.sep}" not in record.pathname


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "verbose", False):  # kafka-python logs every failed connection
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        # py4j logs a Python traceback when a foreachBatch fails or on Ctrl-C (some of
        # it on the root logger): the failure itself becomes one line below.
        logging.getLogger("py4j").setLevel(logging.CRITICAL)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_from_py4j)
    config = None
    try:
        config = _config(args)
        if args.command in STARTS:
            from meterlake.core.tariff import check_tariff_file

            check_tariff_file(config.semantics.tariff, config.semantics.zone)
        COMMANDS[args.command](config, args)
    except MeterlakeError as exc:
        print(f"meterlake: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print("meterlake: error: out of memory (ask for less, e.g. --sensor, or give "
              "the process more memory)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("meterlake: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # delta-rs' errors of an object store that does not answer
        gone = config and on_object_store(config.lake) and unreachable(config.storage, str(exc))
        if not gone:
            raise
        print(f"meterlake: error: {gone}", file=sys.stderr)
        return 1
    return 0


def leave(code: int) -> NoReturn:
    """End the process with `code` once a command is done: stdout and stderr flushed,
    the atexit handlers run (pyspark stops its JVM in one), then out without the
    interpreter's own teardown. There the native thread pools of Arrow and DuckDB are
    destroyed while a worker may still be alive, and now and then the process aborts
    after all its work is done and printed ("terminate called without an active
    exception", SIGABRT: a `replay` under a loaded test suite; apache/arrow#34314,
    duckdb/duckdb#13904)."""
    _flush()
    atexit._run_exitfuncs()
    _flush()  # what the handlers printed
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def console() -> NoReturn:
    """The `meterlake` command (and `python -m meterlake`)."""
    leave(main())
