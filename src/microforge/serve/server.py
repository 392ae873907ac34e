"""The HTTP layer of ``microforge serve``: the page, a small JSON API and the run files.

Python's standard-library threaded HTTP server is enough for one person's browser on the same
machine, and it keeps the explorer free of web dependencies: the page is one HTML file with
plain JavaScript, and nothing is fetched from the internet (no CDN, no web fonts), so it works
in a lab without a network. Gradio was the alternative; it pulls in a large web stack and its
default theme loads fonts from Google.

API (JSON bodies; errors are ``{"error": message}`` with status 400):

* ``GET  /api/model``            properties, units, bounds, defaults and limits;
* ``GET  /api/progress``         ``{"done", "total", "running"}`` of the sampling in progress;
* ``POST /api/check``            ``{"target": {...}}`` -> ``{"in_hull": bool, "intervals": {name: [lo, hi] | null}}``;
* ``POST /api/nearest``          ``{"target": {...}, "locked": [names]}`` -> the nearest in-hull target;
* ``POST /api/random-target``    ``{}`` -> a target drawn inside the training hull;
* ``POST /api/generate``         ``{"target": {...}, "n": int, "seed": int}`` -> the run;
* ``GET  /runs/<id>/<file>``     the run's PNGs, ``run.json`` and ``run.zip``.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable

from ..errors import MicroforgeError
from .explorer import Explorer

MAX_BODY = 64 * 1024  # bytes; a target is a few hundred


def _page() -> bytes:
    return resources.files("microforge.serve").joinpath("static/index.html").read_bytes()


def make_handler(explorer: Explorer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``explorer``."""
    page = _page()
    posts: dict[str, Callable[[dict[str, Any]], Any]] = {
        "/api/check": lambda body: explorer.check(body.get("target")),
        "/api/nearest": lambda body: explorer.nearest(body.get("target"), body.get("locked")),
        # an absent seed draws the next target; an explicit one, null included, must be a valid seed
        "/api/random-target": lambda body: (
            explorer.random_target(body["seed"]) if "seed" in body else explorer.random_target()
        ),
        "/api/generate": explorer.generate,
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "microforge"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                return self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            if path == "/api/model":
                return self._json(HTTPStatus.OK, explorer.describe_model())
            if path == "/api/progress":
                return self._json(HTTPStatus.OK, explorer.progress())
            if path.startswith("/runs/"):
                try:
                    file = explorer.run_file(path.lstrip("/"))
                except FileNotFoundError:
                    return self._json(HTTPStatus.NOT_FOUND, {"error": "no such file"})
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                return self._send(HTTPStatus.OK, file.read_bytes(), kind)
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})

        def do_POST(self) -> None:  # noqa: N802
            handler = posts.get(self.path)
            if handler is None:
                return self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path}"})
            try:
                text = (self.headers.get("Content-Length") or "0").strip()
                if (
                    not text.isdigit()
                ):  # refuses "abc" and "-1" (a negative length would read until the client hangs up)
                    raise MicroforgeError(f"Content-Length must be a non-negative whole number, got {text!r}")
                length = int(text)
                if length > MAX_BODY:
                    raise MicroforgeError("request too large")
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw, parse_constant=_no_constant)
                except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
                    raise MicroforgeError("the request body is not valid JSON") from None
                if not isinstance(body, dict):
                    raise MicroforgeError("the request body must be a JSON object")
                self._json(HTTPStatus.OK, handler(body))
            except MicroforgeError as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except Exception as exc:  # keep serving; say what broke
                self._json(
                    HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {exc.__class__.__name__}: {exc}"}
                )

    return Handler


def _no_constant(name: str) -> None:
    """JSON's non-standard NaN and Infinity are refused (they are not numbers a target can take)."""
    raise ValueError(name)


def start_server(
    explorer: Explorer, host: str = "127.0.0.1", port: int = 7860
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serve in a background thread; ``port=0`` picks a free port (read ``server.server_port``)."""
    try:
        server = ThreadingHTTPServer((host, port), make_handler(explorer))
    except OSError as exc:
        raise MicroforgeError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="microforge-serve", daemon=True)
    thread.start()
    return server, thread
