"""IbkrSession's REST calls against a loopback HTTP server answering with chosen bodies: JSON, empty,
not JSON (an HTML login page, as a gateway whose session expired sends), HTTP errors, a closed port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rxibkr.io.rest import IbkrSession, SessionError

ANSWERS: dict[str, tuple[int, bytes, str]] = {
    "/v1/api/json": (200, b'{"a": [1, 2], "b": null}', "application/json"),
    "/v1/api/empty": (200, b"", "application/json"),
    "/v1/api/html": (200, b"<html><body>Login</body></html>", "text/html"),
    "/v1/api/truncated": (200, b'{"a": [1, 2', "application/json"),
    "/v1/api/missing": (404, b'{"error": "not found"}', "application/json"),
    "/v1/api/broken": (503, b"<html>down</html>", "text/html"),
    "/v1/api/tickle": (200, b"[1, 2]", "application/json"),
}


class Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Handler.seen.append((self.command, self.path, body))
        status, data, kind = ANSWERS.get(
            self.path.split("?")[0], (200, b'{"echo": true}', "application/json")
        )
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def session() -> Iterator[IbkrSession]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    Handler.seen = []
    try:
        yield IbkrSession(f"http://127.0.0.1:{server.server_address[1]}/v1/api/", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_a_json_answer_is_decoded_and_an_empty_one_is_none(session: IbkrSession) -> None:
    assert session.request("GET", "json") == {"a": [1, 2], "b": None}
    assert session.request("GET", "/empty") is None


@pytest.mark.parametrize("path", ["html", "truncated"])
def test_an_answer_that_is_not_json_raises_a_session_error_saying_so(session: IbkrSession, path: str) -> None:
    with pytest.raises(SessionError, match=f"GET {path}: response is not JSON") as caught:
        session.request("GET", path)
    assert caught.value.status is None


@pytest.mark.parametrize(("path", "status"), [("missing", 404), ("broken", 503)])
def test_an_http_error_raises_with_its_status_whatever_the_body(
    session: IbkrSession, path: str, status: int
) -> None:
    with pytest.raises(SessionError, match=f"HTTP {status}") as caught:
        session.request("POST", path)
    assert caught.value.status == status


def test_params_go_in_the_query_with_lowercase_booleans_and_bodies_as_json(session: IbkrSession) -> None:
    session.request("GET", "q", params={"force": True, "n": 3})
    session.request("POST", "p", body={"x": [1]})
    (m1, p1, _), (m2, p2, b2) = Handler.seen
    assert (m1, m2, p2) == ("GET", "POST", "/v1/api/p")
    assert p1 in ("/v1/api/q?force=true&n=3", "/v1/api/q?n=3&force=true")
    assert b2 == b'{"x":[1]}'


def test_tickle_that_is_not_an_object_answers_an_empty_dict(session: IbkrSession) -> None:
    assert session.tickle() == {}


def test_a_closed_port_raises_a_session_error_naming_the_call() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    session = IbkrSession(f"http://127.0.0.1:{port}/v1/api", timeout=2)
    with pytest.raises(SessionError, match="GET json: "):
        session.request("GET", "json")


def test_a_base_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="expected an http"):
        IbkrSession("ws://127.0.0.1:1/v1/api")
