"""The telephony endpoints: each provider's webhook (``POST /<provider>``) and media socket.

A call comes in: the provider POSTs its webhook, signed. The signature is checked against the
public URL the provider called (``--public-url`` + the path: behind a tunnel or a load balancer the
server's own view of the URL differs), and the answer is the provider's markup pointing its media
stream at ``wss://<public>/<provider>/ws`` with the caller's numbers and a one-time token as stream
parameters. The stream's ``start`` must carry that token back, so a media socket opened by anyone
but the provider that called the verified webhook is refused. Then the session runs through the
registry like any other; its ``SessionInfo.call`` says which call it is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from ..bots import SessionInfo
from ..transports.telephony import (
    CALL_PARAMETER,
    FROM_PARAMETER,
    TO_PARAMETER,
    TOKEN_PARAMETER,
    TelephonyProvider,
    TelephonyTransport,
    WebhookRefused,
)
from .config import ServerConfig
from .sessions import SessionRegistry

__all__ = ["telephony_routes"]

logger = logging.getLogger("voxloop.telephony")

#: How long the provider has between our webhook answer and its stream's ``start``.
STREAM_TOKEN_TTL_SECS = 60.0
#: WebSocket close code for a stream whose start did not carry a valid token.
CLOSE_UNAUTHORIZED = 4001


def public_base(config: ServerConfig, request: Request | WebSocket) -> str:
    """``https://host`` as the provider reaches this server."""
    if config.public_url:
        return config.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def telephony_routes(
    config: ServerConfig, sessions: SessionRegistry, providers: Sequence[TelephonyProvider]
) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for provider in providers:
        webhook = _webhook(config, sessions, provider)
        routes.append(Route(f"/{provider.name}", webhook, methods=list(provider.webhook_methods)))
        routes.append(WebSocketRoute(f"/{provider.name}/ws", _media_socket(config, sessions, provider)))
    return routes


def _webhook(
    config: ServerConfig, sessions: SessionRegistry, provider: TelephonyProvider
) -> Callable[[Request], Awaitable[Response]]:
    async def webhook(request: Request) -> Response:
        base = public_base(config, request)
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        body = await request.body()
        try:
            call = provider.verify(url, request.headers, body)
        except WebhookRefused as exc:
            logger.warning("%s webhook refused: %s", provider.name, exc)
            return PlainTextResponse(f"refused: {exc}", status_code=403)
        if (refusal := sessions.refusal()) is not None:
            logger.warning("%s call %s refused: %s", provider.name, call.call_id, refusal)
            return PlainTextResponse(refusal, status_code=503)
        ws_base = (
            "wss" + base.removeprefix("https")
            if base.startswith("https")
            else "ws" + base.removeprefix("http")
        )
        parameters = {TOKEN_PARAMETER: sessions.issue_token(STREAM_TOKEN_TTL_SECS)}
        if call.from_number:
            parameters[FROM_PARAMETER] = call.from_number
        if call.to_number:
            parameters[TO_PARAMETER] = call.to_number
        if call.call_id and provider.name == "vonage":
            parameters[CALL_PARAMETER] = call.call_id  # its stream does not say which call it is
        markup = provider.markup(f"{ws_base}/{provider.name}/ws", parameters)
        logger.info("%s call %s from %s: answered", provider.name, call.call_id, call.from_number)
        return Response(markup.body, media_type=markup.media_type)

    return webhook


def _media_socket(
    config: ServerConfig, sessions: SessionRegistry, provider: TelephonyProvider
) -> Callable[[WebSocket], Awaitable[None]]:
    async def media_socket(websocket: WebSocket) -> None:
        await websocket.accept()
        transport = TelephonyTransport(websocket, provider.serializer(), hang_up=provider.hang_up)
        try:
            await transport.wait_for_start()
        except (TimeoutError, ConnectionError, OSError) as exc:
            logger.warning("%s media socket closed before a usable start: %s", provider.name, exc)
            await transport.close()
            return
        call = transport.call
        assert call is not None
        token = call.custom_parameters.pop(TOKEN_PARAMETER, None)
        call.from_number = call.from_number or call.custom_parameters.pop(FROM_PARAMETER, None)
        call.to_number = call.to_number or call.custom_parameters.pop(TO_PARAMETER, None)
        call.custom_parameters.pop(FROM_PARAMETER, None)
        call.custom_parameters.pop(TO_PARAMETER, None)
        if config.verify_webhooks and not sessions.redeem_token(token):
            logger.warning(
                "%s call %s: the stream's token is missing, used or expired", provider.name, call.call_id
            )
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="missing, used or expired token")
            return
        info = SessionInfo(session_id=uuid.uuid4().hex[:12], transport=provider.name, call=call)
        await sessions.run_session(config.bot, transport, info, close=transport.close)

    return media_socket
