"""A cap on request bodies: 413 problem+json for a body over MAX_REQUEST_BODY_BYTES
(MAX_CODEC_BODY_BYTES on /codec/, whose bodies are batches of Temporal payloads).

Refused at once when the Content-Length says so (nothing is read, no route runs); a body
sent without one (chunked) is counted as the route reads it and refused as soon as it
passes the cap, so a client cannot stream an endless body into memory. Pure ASGI: the route
sees the body as it comes, nothing is buffered here."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem

CODEC_PREFIX = "/codec/"


class _BodyTooLarge(Exception):
    """Raised into the route from `receive`: it stops reading; the middleware answers."""


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # (the server refuses a malformed one; if not, the bytes are counted)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, max_codec_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_codec_bytes = max_codec_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_codec_bytes if scope["path"].startswith(CODEC_PREFIX) else self.max_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        too_large = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def send_unless_refused(message: Message) -> None:
            nonlocal response_started
            if too_large:
                return  # the route's own answer to a body it could not read: the 413 goes instead
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, send_unless_refused)
        except Exception:
            if not too_large:
                raise
        if too_large and not response_started:
            await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(
            413,
            "Request body too large",
            f"the request body may be at most {limit} bytes",
            "content-too-large",
            Request(scope).url.path,
            # The rest of the body is not read: the connection cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
