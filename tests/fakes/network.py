"""The network between kiosk and centre, without sockets: requests adapters for tests.

`WSGIAdapter` hands each request to a Flask app's test client (the real centre, in process).
`ScriptedAdapter` answers from a script, one step per request: a (status, body) pair, an
exception to raise (a reset, a timeout), or a callable that gets the request and may forward it
to the real centre first (a response lost after the centre stored the batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict


def _response(request: requests.PreparedRequest, status: int, body: bytes, headers: Any) -> Any:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers = CaseInsensitiveDict(headers or {})
    response.url = request.url or ""
    response.request = request
    response.encoding = "utf-8"
    return response


class WSGIAdapter(BaseAdapter):
    def __init__(self, app: Any):
        super().__init__()
        self.client = app.test_client()
        self.requests = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        parts = urlsplit(request.url or "")
        answer = self.client.open(
            path=parts.path,
            query_string=parts.query,
            method=request.method or "GET",
            data=request.body,
            headers=dict(request.headers),
        )
        return _response(request, answer.status_code, answer.get_data(), dict(answer.headers))

    def close(self) -> None:
        pass


Step = tuple[int, bytes] | BaseException | Callable[[requests.PreparedRequest], Any]


class ScriptedAdapter(BaseAdapter):
    """Plays `script` one step per request; when it runs out, forwards to `then` (if any)."""

    def __init__(self, script: list[Step], then: BaseAdapter | None = None):
        super().__init__()
        self.script = list(script)
        self.then = then
        self.seen: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(request)
        if not self.script:
            if self.then is None:
                raise requests.ConnectionError("script ended: no network")
            return self.then.send(request, *args, **kwargs)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step(request)
        status, body = step
        return _response(request, status, body, {"Content-Type": "application/json"})

    def close(self) -> None:
        pass


def session_with(adapter: BaseAdapter) -> requests.Session:
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class LoopbackServer:
    """A WSGI app served by waitress on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, app: Any, threads: int = 4):
        import threading

        import waitress

        self._server = waitress.create_server(
            app, host="127.0.0.1", port=0, threads=threads, asyncore_loop_timeout=0.1
        )
        self.url = f"http://127.0.0.1:{self._server.effective_port}/"
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:
            if not self._closing:  # a socket closed under select() while shutting down
                raise

    def close(self) -> None:
        # Closing the listening socket is not enough: waitress's loop runs while any kept-alive
        # client connection stays in its socket map.
        self._closing = True
        for channel in list(self._server._map.values()):
            channel.handle_close()
        self._server.task_dispatcher.shutdown()
        self._thread.join(5)
