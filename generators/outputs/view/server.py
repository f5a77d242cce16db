"""The HTTP side: the static page and a small JSON API over ViewData, on 127.0.0.1 only.

The standard library's threading server is enough for one person's browser, and keeps the
command free of an event loop. Only the three page files are served (no path is taken from the
request), and a request whose Host is not this machine is refused, so a web page elsewhere
cannot read the data through DNS rebinding.

  GET /                 the page (static/index.html)
  GET /static/NAME      app.js, style.css
  GET /api/runs         runs, counts, round comparisons, filter choices
  GET /api/records      one page of rows: outcome, reason, tag, round, run, change, min_score,
                        max_score, q, sort, offset, limit
  GET /api/record?row=N one whole record
"""
from __future__ import annotations

import errno
import json
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from generators.core.errors import UsageError
from generators.outputs.view.data import ViewData
from generators.outputs.view.query import QueryError

HOST = "127.0.0.1"
STATIC = Path(__file__).parent / "static"
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/static/style.css": ("style.css", "text/css; charset=utf-8")}


class Handler(BaseHTTPRequestHandler):
    server: "ViewServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the terminal shows only the URL
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _local_host(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost", "::1")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._local_host():
            self._json({"error": "this viewer answers only requests to 127.0.0.1"}, HTTPStatus.FORBIDDEN)
            return
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        data = self.server.data
        try:
            if url.path in FILES:
                name, kind = FILES[url.path]
                self._send(200, (STATIC / name).read_bytes(), kind)
            elif url.path == "/api/runs":
                self._json(self.server.summary)
            elif url.path == "/api/records":
                self._json(data.records(params))
            elif url.path == "/api/record":
                try:
                    row = int(params.get("row", ""))
                except ValueError:
                    raise QueryError("row: give a row number") from None
                found = data.record(row)
                if found is None:
                    self._json({"error": f"row {row}: no such row"}, HTTPStatus.NOT_FOUND)
                else:
                    self._json(found)
            else:
                self._json({"error": f"{url.path}: not found"}, HTTPStatus.NOT_FOUND)
        except QueryError as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError):
            pass


class ViewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, data: ViewData, port: int) -> None:
        self.data = data
        self.summary = data.summary()
        try:
            super().__init__((HOST, port), Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"--port {port}: already in use; choose another port, "
                                 "or leave --port out to take a free one") from None
            raise UsageError(f"--port {port}: cannot listen on {HOST} ({exc.strerror})") from None

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks up the host's DNS name, which can hang offline
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, and the command, which waits on it)."""
        thread = threading.Thread(target=self.serve_forever, name="gen-view", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
