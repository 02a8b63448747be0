"""RTVIProcessor: the server end of the RTVI protocol, at the top of a pipeline.

It handles what the client sends (handshake, requests, text, function results, audio, keys,
the legacy 0.x API), turns upstream errors into RTVI ``error`` messages, and sends messages by
pushing urgent transport-message frames down to the output transport. Its :class:`RTVIObserver`
is attached to the pipeline task automatically and reports what the bot does.

Messages are handled one at a time on the processor's own task, in arrival order, so a slow
handler never holds up the audio.
"""

from __future__ import annotations

import base64
import binascii
import logging
import warnings
from typing import Any

from .. import __version__
from ..frames import (
    CancelFrame,
    EndFrame,
    EndTaskFrame,
    ErrorFrame,
    Frame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InputTransportMessageFrame,
    InputTransportStartAudioStreamingFrame,
    KeypadEntry,
    LLMConfigureOutputFrame,
    LLMMessagesAppendFrame,
    OutputTransportMessageUrgentFrame,
    StartFrame,
)
from ..pipeline import (
    DOWNSTREAM,
    UPSTREAM,
    FrameDirection,
    FrameProcessor,
    FrameProcessorSetup,
    Mailbox,
    TaskSet,
)
from . import messages as m
from .frames import (
    ClientMessage,
    RTVIActionFrame,
    RTVIClientMessageFrame,
    RTVIServerMessageFrame,
    RTVIServerResponseFrame,
)
from .legacy import (
    SAY_ACTION,
    LegacyServices,
    RTVIAction,
    RTVIActionArgument,
    RTVIService,
)
from .observer import RTVIObserver, RTVIObserverParams
from .protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_TEXT_CHARS,
    PROTOCOL_VERSION,
    ClientRequest,
    Negotiation,
    RequestError,
    decode_client_message,
    negotiate_version,
)

logger = logging.getLogger("voxloop.rtvi")


class RTVIProcessor(FrameProcessor):
    """Speaks RTVI with the client. Put it first in the pipeline.

    Args:
        observer_params: what the automatically attached :class:`RTVIObserver` reports.
        auto_bot_ready: answer ``client-ready`` with ``bot-ready`` at once (default). Turn it
            off to call :meth:`set_bot_ready` yourself when the bot is ready.
        client_ready_timeout_secs: a client that has not sent ``client-ready`` by then is
            treated as ready anyway (logged), so a bot never waits for ever; None waits.
        config: the initial service configuration for 0.x clients, applied through the registered
            options' handlers when the bot becomes ready.
        max_message_bytes: larger client messages are refused with an ``error``.
        transport: the session's transport, whose input then sends no audio until the client is
            ready (what the published clients expect; without it, the input's own setting applies).
        max_text_chars: longer text for the LLM or the voice (``send-text``, ``append-to-context``,
            the ``tts:say`` action) is refused with an ``error-response``; None: no limit.

    Events: ``on_bot_started()``, ``on_client_ready()``, ``on_client_message(ClientMessage)``,
    ``on_ui_message(type, data)``.
    """

    def __init__(
        self,
        *,
        observer_params: RTVIObserverParams | None = None,
        auto_bot_ready: bool = True,
        client_ready_timeout_secs: float | None = 5.0,
        config: list[dict[str, Any]] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        transport: Any = None,
        max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.observer = RTVIObserver(self, observer_params)
        self._auto_bot_ready = auto_bot_ready
        self._client_ready_timeout_secs = client_ready_timeout_secs
        self._max_message_bytes = max_message_bytes
        self._max_text_chars = max_text_chars
        self._legacy = LegacyServices(config)
        self.negotiation: Negotiation | None = None
        self.client_ready = False
        self.client_ready_timed_out = False
        self.bot_ready_sent = False
        self._client_ready_id: str | None = None
        self._skip_tts = False
        self._errors_enabled = self.observer.params.errors_enabled is not False
        if transport is not None:
            # Audio before client-ready would reach a client that cannot play or show it yet.
            transport.input().enable_audio_in_stream_on_start(False)
        self._client_messages: Mailbox[Any] = Mailbox()  # raw, handled in order by the messages task
        self._tasks = TaskSet(self)
        for event in ("on_bot_started", "on_client_ready", "on_client_message", "on_ui_message"):
            self._register_event_handler(event)

    # -- state -------------------------------------------------------------------------------

    @property
    def client_version(self) -> tuple[int, int, int]:
        """The client's protocol version, (0, 0, 0) until it said."""
        return self.negotiation.client_version if self.negotiation else (0, 0, 0)

    @property
    def client_generation(self) -> int:
        """2 for current clients (also before client-ready), 1 for 1.x, 0 for 0.x."""
        return self.negotiation.generation if self.negotiation else 2

    @property
    def errors_enabled(self) -> bool:
        """Whether upstream errors are sent to the client as RTVI ``error`` messages (default)."""
        return self._errors_enabled

    def set_errors_enabled(self, enabled: bool) -> None:
        """Deprecated: errors are part of the protocol; kept so older bots keep working."""
        warnings.warn(
            "RTVIProcessor.set_errors_enabled is deprecated; clients expect error messages",
            DeprecationWarning,
            stacklevel=2,
        )
        self._errors_enabled = enabled

    # -- life cycle --------------------------------------------------------------------------

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        if setup.observer is None:
            return
        # The observer guide has apps add an RTVIObserver to the task themselves: theirs is kept
        # (with their settings), as a second one would send every message twice.
        # An app's observer added later takes over through RTVIObserver.take_over.
        mine = [o for o in setup.observer.observers if isinstance(o, RTVIObserver) and o.rtvi is self]
        if mine:
            self._use_observer(mine[0])
        else:
            setup.observer.add(self.observer)

    def _use_observer(self, observer: RTVIObserver) -> RTVIObserver | None:
        """Report through the app's ``observer`` from now on; returns the one it replaces."""
        replaced, self.observer = self.observer, observer
        if replaced is observer:
            return None
        if observer.params.errors_enabled is False:
            self._errors_enabled = False
        logger.debug("%s: using the RTVIObserver the app added to the task", self)
        return replaced

    async def cleanup(self) -> None:
        await self._stop_tasks()
        await super().cleanup()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputTransportMessageFrame):
            self._client_messages.put(frame.message)  # consumed here: it is RTVI's
            return
        if isinstance(frame, RTVIServerResponseFrame) and direction is UPSTREAM:
            await self.send_response(frame)  # pushed downstream, the observer sends it
            return
        if isinstance(frame, RTVIServerMessageFrame) and direction is UPSTREAM:
            await self.send_server_message(frame.data)
            return
        if isinstance(frame, RTVIActionFrame):
            await self._run_action_frame(frame)
            return
        if isinstance(frame, ErrorFrame) and direction is UPSTREAM:
            if self._errors_enabled:
                await self.send_error(frame.error, fatal=frame.fatal)
        elif isinstance(frame, LLMConfigureOutputFrame):
            self._skip_tts = frame.skip_tts
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._start_tasks()
            await self._call_event_handler("on_bot_started")
        elif isinstance(frame, EndFrame | CancelFrame):
            await self._stop_tasks()

    def _start_tasks(self) -> None:
        if self._tasks:
            return
        self._tasks.spawn(self._handle_messages(), f"{self}::messages")
        if self._client_ready_timeout_secs is not None:
            timer = self._wait_for_client_ready(self._client_ready_timeout_secs)
            self._tasks.spawn(timer, f"{self}::client-ready-timeout")
        if any(getattr(p, "speaks_text", False) for p in self._downstream_processors()):
            self.register_action(SAY_ACTION, warn=False)

    def _downstream_processors(self) -> list[FrameProcessor]:
        found, processor = [], self.next
        while processor is not None:
            found.append(processor)
            processor = processor.next
        return found

    async def _stop_tasks(self) -> None:
        await self._tasks.cancel_and_wait()

    async def _wait_for_client_ready(self, timeout: float) -> None:
        await self.clock.sleep(timeout)
        if self.client_ready:
            return
        logger.warning(
            "%s: no client-ready within %ss; proceeding without it (is the client an RTVI client?)",
            self,
            timeout,
        )
        self.client_ready_timed_out = True
        await self._become_client_ready(None)

    # -- sending -----------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Send an RTVI message (a dict from :func:`voxloop.rtvi.messages.server_message`)."""
        await self.push_frame(OutputTransportMessageUrgentFrame(message=message), DOWNSTREAM)

    async def set_client_ready(self) -> None:
        """Treat the client as ready now (as its ``client-ready`` does): audio starts streaming,
        ``on_client_ready`` fires and, with ``auto_bot_ready``, ``bot-ready`` is sent. Once only."""
        await self._become_client_ready(None)

    async def set_bot_ready(self, about: dict[str, Any] | None = None) -> None:
        """Tell the client the bot is ready (``bot-ready``, answering its ``client-ready``); the
        initial 0.x configuration is applied through its option handlers first."""
        await self._legacy.apply_initial_config(self)
        negotiation = self.negotiation or negotiate_version(PROTOCOL_VERSION)
        data: dict[str, Any] = {
            "version": negotiation.bot_ready_version,
            "about": about or {"library": "voxloop", "library_version": __version__},
        }
        if negotiation.generation == 0:
            data["config"] = self._legacy.current_config()
        self.bot_ready_sent = True
        await self.send(m.server_message("bot-ready", data, id=self._client_ready_id))

    async def send_server_message(self, data: Any) -> None:
        await self.send(m.server_message("server-message", data))

    async def send_server_response(
        self, client_msg: ClientMessage | RTVIClientMessageFrame, data: Any = None
    ) -> None:
        """Answer a client request (the client's ``sendClientRequest`` resolves with ``data``)."""
        payload: dict[str, Any] = {"t": client_msg.type}
        if data is not None:
            payload["d"] = data
        await self.send(m.server_message("server-response", payload, id=client_msg.msg_id))

    async def send_error_response(
        self, client_msg: ClientMessage | RTVIClientMessageFrame | str | None, error: str
    ) -> None:
        """Reject a client request (its ``sendClientRequest`` fails with ``error``)."""
        msg_id = client_msg if client_msg is None or isinstance(client_msg, str) else client_msg.msg_id
        await self.send(m.server_message("error-response", {"error": error}, id=msg_id))

    async def send_error(self, error: str, *, fatal: bool = False) -> None:
        """Tell the client something went wrong; ``fatal`` makes the client disconnect."""
        await self.send(m.server_message("error", {"error": error, "fatal": fatal}))

    async def interrupt_bot(self) -> None:
        """Stop the bot talking now (as if the user had barged in)."""
        await self.broadcast_interruption()

    async def handle_function_call(self, params: Any) -> None:
        """Deprecated: a function handler (``llm.register_function(None, rtvi.handle_function_call)``)
        that has the client run the call; its ``llm-function-call-result`` brings the result back."""
        warnings.warn(
            "RTVIProcessor.handle_function_call is deprecated; the client is told about calls by the "
            "llm-function-call-in-progress message",
            DeprecationWarning,
            stacklevel=2,
        )
        data = {
            "function_name": params.function_name,
            "tool_call_id": params.tool_call_id,
            "args": dict(params.arguments),
        }
        await self.send(m.server_message("llm-function-call", data))

    async def send_action_response(self, msg_id: str, result: Any) -> None:
        payload = {"result": result} if result is not None else {}
        await self.send(m.server_message("action-response", payload, id=msg_id))

    async def _run_action_frame(self, frame: RTVIActionFrame) -> None:
        try:
            result = await self._legacy.run(self, frame.service, frame.action, frame.arguments or {})
        except Exception as exc:
            logger.warning("%s: action %s:%s failed: %s", self, frame.service, frame.action, exc)
            if frame.message_id is not None:
                await self.send_error_response(frame.message_id, str(exc))
            return
        if frame.message_id is not None:
            await self.send_action_response(frame.message_id, result)

    async def send_response(self, frame: RTVIServerResponseFrame) -> None:
        """Send the answer an :class:`RTVIServerResponseFrame` carries (server- or error-response)."""
        if frame.error is not None:
            await self.send_error_response(frame.client_msg, frame.error)
        else:
            await self.send_server_response(frame.client_msg, frame.data)

    # -- legacy registry ---------------------------------------------------------------------

    def register_service(self, service: RTVIService, *, warn: bool = True) -> None:
        """Offer a service with options to 0.x clients (deprecated API)."""
        self._legacy.register_service(service, warn=warn)

    def register_action(self, action: RTVIAction, *, warn: bool = True) -> None:
        """Offer an action to 0.x clients (deprecated API)."""
        self._legacy.register_action(action, warn=warn)

    # -- receiving ---------------------------------------------------------------------------

    async def handle_message(self, message: Any) -> None:
        """Handle a client message now (what arriving InputTransportMessageFrames lead to)."""
        decoded = decode_client_message(message, max_bytes=self._max_message_bytes)
        if not isinstance(decoded, ClientRequest):
            logger.warning("%s: %s", self, decoded.reason)
            if decoded.reply is not None:
                await self.send(decoded.reply)
            return
        handler = _HANDLERS[decoded.type]
        try:
            await handler(self, decoded)
        except RequestError as exc:
            await self.send_error_response(decoded.id, str(exc))
        except Exception as exc:
            logger.exception("%s: handling %s failed", self, decoded.type)
            await self.send_error_response(decoded.id, f"Exception processing message: {exc}")

    async def _handle_messages(self) -> None:
        messages = self._client_messages
        while True:
            await self.handle_message(await messages.get())

    async def _become_client_ready(self, request: ClientRequest | None) -> None:
        if self.client_ready:
            return
        self.client_ready = True
        await self.push_frame(InputTransportStartAudioStreamingFrame())
        await self._call_event_handler("on_client_ready")
        if self._auto_bot_ready:
            await self.set_bot_ready()

    async def _on_client_ready(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.ClientReadyData)
        self.negotiation = negotiate_version(data.version)
        self._client_ready_id = request.id
        if self.negotiation.problem:
            logger.warning("%s: %s", self, self.negotiation.problem)
            await self.send_error_response(request.id, self.negotiation.problem)
        if self.negotiation.generation < 2:
            logger.info("%s: RTVI %s client (legacy)", self, data.version or "0.x")
        if self.client_ready and self.client_ready_timed_out:
            await self.set_bot_ready()  # late client-ready: it is still owed a bot-ready
        await self._become_client_ready(request)

    async def _on_client_message(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.ClientMessageData)
        await self.push_frame(RTVIClientMessageFrame(msg_id=request.id, type=data.t, data=data.d))
        await self._call_event_handler("on_client_message", ClientMessage(request.id, data.t, data.d))

    async def _on_send_text(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.SendTextData)
        self._check_text_length(request.type, data.content)
        options = data.options
        if options.run_immediately:
            await self.interrupt_bot()
        switch = options.audio_response == self._skip_tts  # the wanted output differs from now
        previous = self._skip_tts
        if switch:
            await self.push_frame(LLMConfigureOutputFrame(skip_tts=not options.audio_response))
        message = {"role": "user", "content": data.content}
        await self.push_frame(LLMMessagesAppendFrame([message], run_llm=options.run_immediately))
        if switch:
            await self.push_frame(LLMConfigureOutputFrame(skip_tts=previous))

    async def _on_append_to_context(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.AppendToContextData)
        self._check_text_length(request.type, data.content)
        logger.info("%s: append-to-context is deprecated; clients should use send-text", self)
        if data.run_immediately:
            await self.interrupt_bot()
        message = {"role": data.role, "content": data.content}
        await self.push_frame(LLMMessagesAppendFrame([message], run_llm=data.run_immediately))

    def _check_text_length(self, what: str, content: Any) -> None:
        """Refuse text over ``max_text_chars`` before it costs any work downstream."""
        limit = self._max_text_chars
        if limit is None:
            return
        if isinstance(content, str):
            size = len(content)
        elif isinstance(content, list):  # content parts: the text parts are what gets read
            size = sum(
                len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        else:
            return
        if size > limit:
            raise RequestError(
                f"Invalid message: {what}: the text has {size} characters, more than the limit of {limit}"
            )

    async def _on_function_call_result(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.FunctionCallResultData)
        await self.push_frame(
            FunctionCallResultFrame(
                function_name=data.function_name,
                tool_call_id=data.tool_call_id,
                arguments=data.arguments,
                result=data.result,
            )
        )

    async def _on_disconnect_bot(self, request: ClientRequest) -> None:
        await self.push_frame(EndTaskFrame(reason="the client asked the bot to disconnect"), UPSTREAM)

    async def _on_raw_audio(self, request: ClientRequest) -> None:
        data = request.data
        if isinstance(data, m.RawAudioData):
            chunks, rate, channels = [data.base64Audio], data.sampleRate, data.numChannels
        else:
            assert isinstance(data, m.RawAudioBatchData)
            chunks, rate, channels = data.base64AudioBatch, data.sampleRate, data.numChannels
        frames = []
        for chunk in chunks:
            try:
                audio = base64.b64decode(chunk, validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(f"Invalid message: {request.type}: audio is not base64") from None
            if len(audio) % (2 * channels):
                raise RequestError(
                    f"Invalid message: {request.type}: {len(audio)} bytes is not whole "
                    f"16-bit samples for {channels} channel(s)"
                )
            frames.append(InputAudioRawFrame(audio=audio, sample_rate=rate, num_channels=channels))
        for frame in frames:
            await self.push_frame(frame)

    async def _on_dtmf(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.DTMFData)
        for button in data.buttons:
            await self.push_frame(InputDTMFFrame(button=KeypadEntry(button)))

    async def _on_ui_message(self, request: ClientRequest) -> None:
        await self._call_event_handler("on_ui_message", request.type, request.data.model_dump())

    async def _on_describe_config(self, request: ClientRequest) -> None:
        config = self._legacy.describe_config()
        await self.send(m.server_message("config-available", {"config": config}, id=request.id))

    async def _on_describe_actions(self, request: ClientRequest) -> None:
        actions = self._legacy.describe_actions()
        await self.send(m.server_message("actions-available", {"actions": actions}, id=request.id))

    async def _on_get_config(self, request: ClientRequest) -> None:
        config = self._legacy.current_config()
        await self.send(m.server_message("config", {"config": config}, id=request.id))

    async def _on_update_config(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.UpdateConfigData)
        if data.interrupt:
            await self.interrupt_bot()
        await self._legacy.update_config(self, data.config)
        await self._on_get_config(request)

    async def _on_action(self, request: ClientRequest) -> None:
        data = request.data
        assert isinstance(data, m.ActionData)
        result = await self._legacy.run_action(self, data)
        if request.id is not None:
            await self.send_action_response(request.id, result)


_HANDLERS = {
    "client-ready": RTVIProcessor._on_client_ready,
    "client-message": RTVIProcessor._on_client_message,
    "send-text": RTVIProcessor._on_send_text,
    "append-to-context": RTVIProcessor._on_append_to_context,
    "llm-function-call-result": RTVIProcessor._on_function_call_result,
    "disconnect-bot": RTVIProcessor._on_disconnect_bot,
    "raw-audio": RTVIProcessor._on_raw_audio,
    "raw-audio-batch": RTVIProcessor._on_raw_audio,
    "dtmf": RTVIProcessor._on_dtmf,
    "ui-event": RTVIProcessor._on_ui_message,
    "ui-snapshot": RTVIProcessor._on_ui_message,
    "ui-cancel-job-group": RTVIProcessor._on_ui_message,
    "describe-config": RTVIProcessor._on_describe_config,
    "describe-actions": RTVIProcessor._on_describe_actions,
    "get-config": RTVIProcessor._on_get_config,
    "update-config": RTVIProcessor._on_update_config,
    "action": RTVIProcessor._on_action,
}

__all__ = ["RTVIProcessor", "RTVIService", "RTVIAction", "RTVIActionArgument"]
