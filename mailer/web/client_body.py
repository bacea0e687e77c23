"""Clients that are slow or gone while a route reads the request body.

uvicorn bounds the wait for a request's headers (:mod:`mailer.web.server`), not for its body: a
client that trickles a body a byte at a time (slowloris) would hold a worker for as long as it
liked when `mailer serve` is exposed without the proxy. Here the whole body must arrive within
``MAILER_HTTP_BODY_TIMEOUT`` seconds of the route's first read, or the request is answered 408.

A client that hangs up mid-body is the client's doing, not a bug: one log line, no traceback.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("mailer.web")  # warnings: the level `mailer serve`'s log shows

HUNG_UP = (ClientDisconnect, anyio.EndOfStream, anyio.BrokenResourceError)


class BodyDeadlineExceeded(HTTPException):
    """The body did not arrive in time: a 408, and the connection is closed after it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"The request body did not arrive within {seconds:g} s.",
                         headers={"Connection": "close"})
        self.seconds = seconds


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


class ClientBodyMiddleware:
    """A total deadline for each request body; one log line for a client that hung up."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reader = _BodyReader(scope, receive, self.seconds)
        try:
            await self.app(scope, reader.receive, send)
        except HUNG_UP:
            reader.note_hang_up()  # nobody is left to answer


class _BodyReader:
    """One request's ``receive``, with the deadline counted from the first read of its body."""

    def __init__(self, scope: Scope, receive: Receive, seconds: float) -> None:
        self.scope = scope
        self.inner = receive
        self.seconds = seconds
        self.deadline: float | None = None
        self.body_done = False
        self.hang_up_logged = False

    async def receive(self) -> Message:
        if self.body_done:  # after the body only a disconnect can come: no deadline on that wait
            return await self.inner()
        loop = asyncio.get_running_loop()
        if self.deadline is None:
            self.deadline = loop.time() + self.seconds
        try:
            message = await asyncio.wait_for(self.inner(), max(self.deadline - loop.time(), 0))
        except TimeoutError:
            log.warning("%s %s from %s: the body did not arrive within %gs: 408",
                     self.scope.get("method"), self.scope.get("path"), client_of(self.scope),
                     self.seconds)
            raise BodyDeadlineExceeded(self.seconds) from None
        if message["type"] == "http.disconnect":
            self.note_hang_up()
        elif not message.get("more_body", False):
            self.body_done = True
        return message

    def note_hang_up(self) -> None:
        if not self.hang_up_logged:
            self.hang_up_logged = True
            log.warning("%s %s from %s: the client hung up before the answer",
                     self.scope.get("method"), self.scope.get("path"), client_of(self.scope))
