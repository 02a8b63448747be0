"""The sessions of this process: one registry and one lifecycle for every transport.

A session starts when a client connects (a WebSocket on ``/ws``, an offer on ``/api/offer``):
:meth:`SessionRegistry.start` asks the bot for its task and registers it, or, when the bot cannot
start, tells the client and closes. :meth:`SessionRegistry.run` runs the task until it ends (the
client left, the bot finished, or the server cancelled it), then unregisters it and closes the
transport. :meth:`SessionRegistry.run_session` is both, for a caller that waits for the whole
session (the WebSocket endpoint); WebRTC answers the offer in between, so it calls the two halves.

The registry also holds the limit, the one-time ``/ws`` tokens, and what draining needs: a count,
:attr:`SessionRegistry.empty`, :meth:`~SessionRegistry.stop_accepting`,
:meth:`~SessionRegistry.end_all` (the client is told) and :meth:`~SessionRegistry.cancel_all`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from ..bots import BotFactory, SessionInfo, create_task
from ..frames import ErrorFrame
from ..pipeline import Clock, FrameDirection, PipelineTask, SystemClock
from ..telemetry import SessionTelemetry, Telemetry
from ..telemetry import session_id as current_session_id
from ..telemetry import trace_id as current_trace_id
from ..transports import Transport

__all__ = ["BotStartError", "Session", "SessionRefused", "SessionRegistry", "SessionTransport"]

logger = logging.getLogger("voxloop.server")

#: What ``/start`` and the endpoints answer when the limit is reached.
FULL = "the server is full; try again later"

Closer = Callable[[], Awaitable[None]]


#: A session's transport: the bot gets it, and the registry listens to its ``on_client_disconnected``.
SessionTransport = Transport


class BotStartError(Exception):
    """The bot factory failed for this session; the client has been told and its transport closed."""


class SessionRefused(Exception):
    """The limit was reached when the session asked to start; nothing was created or closed."""


class Session:
    """One registered session: what the bot knows of it, its task, and how its transport closes."""

    def __init__(
        self, info: SessionInfo, task: PipelineTask, close: Closer, telemetry: SessionTelemetry | None = None
    ) -> None:
        self.info = info
        self.task = task
        self.telemetry = telemetry
        self._close = close

    @property
    def session_id(self) -> str:
        return self.info.session_id


class SessionRegistry:
    """The running sessions: counted, limited, cancelled together; and the one-time tokens.

    ``clock`` is where token expiry reads the time (``voxloop.testing.FakeClock`` in tests).
    ``telemetry`` counts the sessions, traces them and watches their turns (none by default).
    """

    def __init__(self, limit: int, *, clock: Clock | None = None, telemetry: Telemetry | None = None) -> None:
        self.limit = limit
        self.telemetry = telemetry or Telemetry()
        self._clock: Clock = clock or SystemClock()
        self._sessions: dict[str, Session] = {}
        self._starting = 0  # slots held by sessions whose bot is being created
        self._tokens: dict[str, int] = {}  # token -> expiry, in the clock's nanoseconds
        self._drain_reason: str | None = None
        self.empty = asyncio.Event()
        """Set while no session runs: what a shutdown or a drain waits on."""
        self.empty.set()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    @property
    def full(self) -> bool:
        return len(self._sessions) + self._starting >= self.limit

    @property
    def draining(self) -> bool:
        """True once :meth:`stop_accepting` was called: no new session starts here."""
        return self._drain_reason is not None

    def refusal(self) -> str | None:
        """Why a new session would be refused now, or None if it is welcome."""
        if self._drain_reason is not None:
            return f"{self._drain_reason}; try again later"
        return FULL if self.full else None

    @property
    def accepting(self) -> bool:
        return self.refusal() is None

    def stop_accepting(self, reason: str = "the server is shutting down") -> None:
        """Refuse every new session from now on (draining); the running ones go on."""
        if self._drain_reason is None:
            self._drain_reason = reason

    async def end_all(self, reason: str) -> None:
        """Tell every session's client why it ends (a fatal RTVI ``error``), which ends the session."""
        for session in list(self._sessions.values()):
            if session.telemetry is not None:
                session.telemetry.ended_by_server(reason)  # that fatal error is no failure of the session
            try:
                await session.task.queue_frame(ErrorFrame(reason, fatal=True), FrameDirection.UPSTREAM)
            except Exception:
                logger.exception("session %s: could not tell its client it ends", session.session_id)
                session.task.request_cancel(reason)

    def cancel_all(self, reason: str) -> None:
        """Ask every running session to end; :attr:`empty` is set once they all have."""
        for session in list(self._sessions.values()):
            session.task.request_cancel(reason)

    # -- tokens --------------------------------------------------------------------------------------

    def issue_token(self, ttl_secs: float) -> str:
        """A token for one ``/ws`` connection within ``ttl_secs``."""
        now = self._clock.now_ns()
        self._tokens = {t: expiry for t, expiry in self._tokens.items() if expiry > now}
        token = secrets.token_urlsafe(24)
        self._tokens[token] = now + int(ttl_secs * 1e9)
        return token

    def redeem_token(self, token: str | None) -> bool:
        """True once per valid token: tokens are single-use and expire."""
        if token is None:
            return False
        expiry = self._tokens.pop(token, None)
        return expiry is not None and expiry > self._clock.now_ns()

    # -- the lifecycle -------------------------------------------------------------------------------

    async def start(
        self,
        bot: BotFactory,
        transport: SessionTransport,
        info: SessionInfo,
        *,
        close: Closer,
        refuse: Closer | None = None,
    ) -> Session:
        """Create the bot's task for ``transport`` and register it; the client leaving cancels it.

        A slot is held from the call on (a slow, async bot factory cannot let other clients in
        past the limit); when none is free, :class:`SessionRefused` is raised at once and the
        caller refuses the client in its wire's terms. ``close`` ends the transport when the
        session is over. If the bot cannot start, ``refuse`` (default: ``close``) tells the client
        and ends the transport; if the client left while it was being created, ``close`` ends it;
        either way :class:`BotStartError` is raised. A session that starts while draining is
        cancelled at once.
        """
        # Every log line of the session carries its id; tasks the bot creates here inherit it.
        token = current_session_id.set(info.session_id)
        try:
            return await self._start(bot, transport, info, close=close, refuse=refuse)
        finally:
            current_session_id.reset(token)

    async def _start(
        self,
        bot: BotFactory,
        transport: SessionTransport,
        info: SessionInfo,
        *,
        close: Closer,
        refuse: Closer | None,
    ) -> Session:
        if self.full:
            raise SessionRefused(FULL)
        task: PipelineTask | None = None
        left = False

        def client_left(_transport: object) -> None:
            nonlocal left
            left = True
            if task is not None:
                task.request_cancel("client disconnected")

        transport.add_event_handler("on_client_disconnected", client_left)
        self._starting += 1
        try:
            task = await create_task(bot, transport, info)
        except Exception as exc:
            logger.exception("session %s: the bot could not be created", info.session_id)
            self.telemetry.session_failed_to_start(info.transport)
            await _quietly(refuse or close, info.session_id)
            raise BotStartError("the bot could not start") from exc
        finally:
            self._starting -= 1  # the slot passes to the registered session (no await between)
        if left:
            logger.info("session %s: the client left before its bot started", info.session_id)
            await _quietly(close, info.session_id)
            raise BotStartError("the client left before the bot started")
        telemetry = None
        if self.telemetry.enabled:
            telemetry = self.telemetry.session(info.session_id, info.transport)
            task.add_observer(telemetry.observer)
            telemetry.started()
        session = Session(info, task, close, telemetry)
        self._sessions[info.session_id] = session
        self.empty.clear()
        if self._drain_reason is not None:  # it was being created when the drain began
            task.request_cancel(self._drain_reason)
        logger.info("session %s started over %s (%d running)", info.session_id, info.transport, len(self))
        return session

    async def run(self, session: Session) -> None:
        """Run a started session to its end, then unregister it and close its transport."""
        token = current_session_id.set(session.session_id)
        trace = current_trace_id.set(session.telemetry.trace_id if session.telemetry is not None else None)
        error: BaseException | None = None
        try:
            await session.task.run()
        except Exception as exc:
            error = exc
            logger.exception("session %s failed", session.session_id)
        finally:
            self._sessions.pop(session.session_id, None)
            if not self._sessions:
                self.empty.set()
            await _quietly(session._close, session.session_id)
            if session.telemetry is not None:
                session.telemetry.ended(error)
                if error is None and session.telemetry.fatal_error is not None:
                    logger.warning(
                        "session %s ended on an error: %s", session.session_id, session.telemetry.fatal_error
                    )
            logger.info("session %s ended (%d running)", session.session_id, len(self))
            current_trace_id.reset(trace)
            current_session_id.reset(token)

    async def run_session(
        self,
        bot: BotFactory,
        transport: SessionTransport,
        info: SessionInfo,
        *,
        close: Closer,
        refuse: Closer | None = None,
    ) -> None:
        """:meth:`start` then :meth:`run`: the whole session (a bot that cannot start ends it)."""
        try:
            session = await self.start(bot, transport, info, close=close, refuse=refuse)
        except SessionRefused:
            await _quietly(refuse or close, info.session_id)
            return
        except BotStartError:
            return
        await self.run(session)


async def _quietly(close: Closer, session_id: str) -> None:
    """A transport that fails to close must not keep the session registered or hide its end."""
    try:
        await close()
    except Exception:
        logger.exception("session %s: closing its transport failed", session_id)
