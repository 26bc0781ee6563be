"""`meterlake serve`: a live page of the four answers and their JSON API (Starlette).

Routes (all GET; the server is read-only and listens on loopback by default):

- `/`: the page (`meterlake/app/page/`), which renders `/api/answers` and polls
  `/api/version` to re-render when a gold table gets a new Delta version;
- `/api/q1` ... `/api/q4`, `/api/q3_long`: the rows of `meterlake query qN
  --format json`, byte for byte, streamed as they are written; `?version=N` or
  `?as_of=TIMESTAMP` travel in time, `?at=TIME` to the version standing at that
  event time (as `query --at`);
- `/api/plans`, `/api/bill`, `/api/health`, `/api/projection`: the rows of `meterlake
  query plans|bill|health|projection --format json`; plans, bill and health travel
  with `?version=N` or `?as_of=TIMESTAMP` (applied to each table they read), not `at`;
  the projection is live only;
- `/api/panels`: what the page's panels beyond the four answers show
  (meterlake.app.panels), live, `?as_of=` or `?at=` (the instant the day_cost
  version standing then was written), with `?sensor=ID` as for `/api/answers`;
- `/api/answers`: what the page shows, in one document: of each answer the rows
  of the `[read] page_sensors` largest meters and of those asked for with
  `?sensor=ID` (repeatable), how many there are in all, its table version and
  `as_of` (as local wall-clock text), q4's band split of those meters;
- `/api/sensors?prefix=P`: the first sensors of the month whose id starts with P
  (the page's picker);
- `/api/version`: the live version of each gold table;
- `/api/timeline`: the moments of event time the gold tables stood at (the newest
  1000; `?limit=N`), each with the versions of all four tables then; the page
  travels to one with `?at=`.

Errors are JSON `{"error": "..."}`: 404 for an unknown view or path, 400 for a
bad version or time, 503 while a view's gold table does not exist yet or when an
answer needs more memory than `[read] memory_limit`, 500 for another error of
the lake.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from meterlake.app.output import format_json, json_objects, text_chunks
from meterlake.app.panels import MORE_VIEWS, Missing, more_view, panels_document
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.tariff import check_tariff_file
from meterlake.read.clock import wall_clock
from meterlake.read.connection import OutOfMemory
from meterlake.read.livegold import BadTravel, LiveGold, NotYet
from meterlake.read.result import Result
from meterlake.read.views import ANSWERS, COST_NOTE, VIEW_TABLES, VIEW_TITLES

log = logging.getLogger(__name__)

PAGE = Path(__file__).parent / "page"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
TIMELINE_LIMIT = 1000  # the newest moments /api/timeline lists (?limit=N): a month of hours
SENSOR_MATCHES = 20  # ids /api/sensors lists for the picker
STREAM_PIECE_BYTES = 1 << 20  # a streamed answer is sent a megabyte at a time


def plotly_js() -> Path:
    """plotly.js as shipped inside the pinned `plotly` wheel (no web download)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@dataclass(frozen=True)
class Travel:
    """Where in time to answer: a table version, an instant (`as_of`), an event time
    (`at`), or live (all None)."""

    version: int | None = None
    as_of: str | None = None
    at: str | None = None

    @property
    def live(self) -> bool:
        return self.version is None and self.as_of is None and self.at is None


def _travel(request: Request) -> Travel:
    """`version` / `as_of` / `at` from the query string; BadTravel when unreadable."""
    params = request.query_params
    version_text, as_of, at = params.get("version"), params.get("as_of"), params.get("at")
    given = [name for name in ("version", "as_of", "at") if params.get(name)]
    if len(given) > 1:
        raise BadTravel(f"give one of version, as_of and at, not {' and '.join(given)}")
    if not version_text:
        return Travel(as_of=as_of or None, at=at or None)
    try:
        return Travel(version=int(version_text))
    except ValueError:
        raise BadTravel(f"version must be a whole number, got {version_text!r}") from None


def _answer_document(
    gold: LiveGold, view: str, result: Result, largest: int, chosen: set[str]
) -> dict[str, Any]:
    """What the page draws of one answer: the `largest` meters (q1, q2, q4: the first
    rows of the sorted answer; q3: the most kWh over the day) and the `chosen` ones."""
    zone = gold.zone
    if result.cells is not None:  # q3: a column per sensor
        cells = result.cells
        shown = cells.only([*cells.largest(largest), *chosen])
        columns, rows = ["period_start", *shown.sensors], list(shown.wide_rows())
        count = len(cells.sensors)
    else:
        columns, count = result.columns, len(result.rows)
        rows = [row for i, row in enumerate(result.rows) if i < largest or row[0] in chosen]
    doc: dict[str, Any] = {
        "view": view,
        "title": VIEW_TITLES[view],
        "table": VIEW_TABLES[view],
        "version": result.version,
        "as_of": None if result.as_of is None else wall_clock(result.as_of, zone),
        "columns": columns,
        "rows": json_objects(columns, rows),
        "sensor_count": count,
    }
    if view == "q3":
        doc["periods"] = [wall_clock(row[0], zone) for row in rows]
    return doc


def _pieces(chunks: Iterator[str], size: int = STREAM_PIECE_BYTES) -> Iterator[bytes]:
    """Text chunks (a row each) joined into pieces of about `size` bytes: a piece per row
    would cost the server a send per row."""
    buffer: list[str] = []
    length = 0
    for chunk in chunks:
        buffer.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(buffer).encode("utf-8")
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


def _lake_error(exc: MeterlakeError) -> JSONResponse:
    return _error(503 if isinstance(exc, (NotYet, OutOfMemory)) else 500, str(exc))


def build_app(config: Config, gold: LiveGold | None = None) -> Starlette:
    """The ASGI application over one lake (`gold`: the open tables to serve from)."""
    gold = gold or LiveGold(config)

    def more_json(request: Request, view: str) -> Response:
        try:
            when = _travel(request)
            if when.at is not None:
                raise BadTravel(f"{view} travels by version or as_of, not at")
            result = more_view(config, view, when.version, when.as_of)
        except Missing as exc:
            return _error(503, str(exc))
        except BadTravel as exc:
            return _error(400, str(exc))
        except MeterlakeError as exc:
            return _error(500 if when.live else 400, str(exc))
        return Response(format_json(result), media_type="application/json")

    def panels(request: Request) -> Response:
        try:
            when = _travel(request)
            if when.version is not None:
                raise BadTravel("the panels travel by as_of or at, not version")
            as_of = gold.written_at("day_cost", when.at) if when.at is not None else when.as_of
        except BadTravel as exc:
            return _error(400, str(exc))
        except MeterlakeError as exc:
            return _lake_error(exc)
        chosen = set(request.query_params.getlist("sensor"))
        return JSONResponse(panels_document(config, as_of, config.read.page_sensors, chosen))

    def view_json(request: Request) -> Response:
        view = request.path_params["view"]
        if view in MORE_VIEWS:
            return more_json(request, view)
        if view not in VIEW_TABLES:
            known = ", ".join([*VIEW_TABLES, *MORE_VIEWS])
            return _error(404, f"unknown view {view!r}; known: {known}")
        try:
            when = _travel(request)
            result = gold.answer(view, when.version, when.as_of, when.at)
        except BadTravel as exc:
            return _error(400, str(exc))
        except MeterlakeError as exc:
            return _lake_error(exc)
        if result.cells is None:  # a few rows: one piece
            return Response(format_json(result), media_type="application/json")
        return StreamingResponse(_pieces(text_chunks(result, "json")),
                                 media_type="application/json")

    def answers(request: Request) -> Response:
        try:
            when = _travel(request)
        except BadTravel as exc:
            return _error(400, str(exc))
        chosen = set(request.query_params.getlist("sensor"))
        largest = config.read.page_sensors
        doc: dict[str, Any] = {
            "live": when.live,
            "versions": gold.versions(),
            "cost_note": COST_NOTE,
            "answers": {},
            "errors": {},
        }
        for view in ANSWERS:
            try:
                doc["answers"][view] = _answer_document(
                    gold, view, gold.answer(view, when.version, when.as_of, when.at),
                    largest, chosen)
            except BadTravel as exc:
                return _error(400, str(exc))
            except MeterlakeError as exc:
                doc["errors"][view] = str(exc)
        if "q4" in doc["answers"]:
            shown = {row["sensor_id"] for row in doc["answers"]["q4"]["rows"]}
            try:
                bands = gold.bands(when.version, when.as_of, when.at)
            except MeterlakeError as exc:
                return _lake_error(exc)
            doc["bands"] = {
                "silver_version": bands.silver_version,
                "rows": [dict(zip(("sensor_id", "band", "price", "cost_eur"), row, strict=True))
                         for row in bands.rows if row[0] in shown],
            }
        return JSONResponse(doc)

    def sensors(request: Request) -> Response:
        prefix = request.query_params.get("prefix", "")
        try:
            month = gold.answer("q1")
        except MeterlakeError as exc:
            return _lake_error(exc)
        ids = sorted(row[0] for row in month.rows if str(row[0]).startswith(prefix))
        return JSONResponse({"count": len(month.rows), "sensors": ids[:SENSOR_MATCHES]})

    def version(request: Request) -> Response:
        return JSONResponse({"versions": gold.versions()})

    def timeline(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", TIMELINE_LIMIT))
        except ValueError:
            return _error(400, "limit must be a whole number")
        try:
            moments = gold.timeline(limit) if limit > 0 else []
        except MeterlakeError as exc:
            return _lake_error(exc)
        return JSONResponse([
            {"at": m.at.astimezone(UTC).isoformat(), "label": wall_clock(m.at, gold.zone),
             "versions": m.versions}
            for m in moments
        ])

    def index(request: Request) -> Response:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript")

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, exc.detail)

    routes = [
        Route("/", index),
        Route("/api/answers", answers),
        Route("/api/panels", panels),
        Route("/api/version", version),
        Route("/api/timeline", timeline),
        Route("/api/sensors", sensors),
        Route("/api/{view}", view_json),
        Route("/static/plotly.min.js", plotly),
        Mount("/static", StaticFiles(directory=PAGE)),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.gold = gold
    return app


def check_port(host: str, port: int) -> None:
    """Fail with one line when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise MeterlakeError(f"cannot listen on {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise MeterlakeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _server(config: Config, host: str, port: int, gold: LiveGold | None = None,
            on_listening: Callable[[], None] | None = None):
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and on_listening is not None:
                on_listening()

    check_tariff_file(config.semantics.tariff, config.semantics.zone)  # bad: nothing listens
    check_port(host, port)
    settings = uvicorn.Config(
        build_app(config, gold), host=host, port=port, log_level="warning", access_log=False,
        lifespan="off", timeout_graceful_shutdown=2,
    )
    return Server(settings)


def serve(config: Config, host: str, port: int, echo=print) -> None:
    """Serve until interrupted (`meterlake serve`); says where once it listens."""
    if host not in LOOPBACK:
        log.warning("listening on %s: reachable beyond this machine (read-only)", host)

    def listening() -> None:
        echo(f"serving {config.lake} on http://{host}:{port}/  (API: /api/q1 ... /api/q4, "
             "/api/q3_long, /api/plans, /api/bill, /api/health, /api/projection); "
             "Ctrl-C stops")
        sys.stdout.flush()

    _server(config, host, port, on_listening=listening).run()


@contextmanager
def running(
    config: Config, host: str, port: int, gold: LiveGold | None = None
) -> Iterator[str]:
    """The server in a background thread, for tests and the benchmark; yields its URL."""
    server = _server(config, host, port, gold)
    thread = threading.Thread(target=server.run, name="meterlake-serve", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise MeterlakeError(f"the server on {host}:{port} did not start")
            threading.Event().wait(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        server.config.app.state.gold.close()
