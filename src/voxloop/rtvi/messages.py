"""RTVI message models, both directions, serialised exactly as the published clients expect.

Every message is ``{"label": "rtvi-ai", "type": ..., "id"?: ..., "data"?: ...}``. Server
messages leave out fields that are None; ``id`` is echoed on answers so clients can match them to
their requests. Client ``data`` models validate what a client sends; unknown extra fields are
tolerated (newer clients add fields), wrong types are not.

The server models cover what the current published clients declare (``@pipecat-ai/client-js``
1.13.1, protocol 2.1.0) and what the peer's current server sends (pipecat 1.14, protocol 2.2.0),
so the test kit can check either. :func:`validate_server_message` is strict by default (no
unknown type, no unknown field: for checking voxloop's own output) and lenient on request (what
a client can live with from a newer server: unknown types and extra fields pass).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LABEL = "rtvi-ai"


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class _StrictData(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ServerData(BaseModel):
    """A server message's data: extra fields are kept, so a newer server's additions validate
    leniently; ``validate_server_message(strict=True)`` then refuses them."""

    model_config = ConfigDict(extra="allow")


# -- client -> server -----------------------------------------------------------------------


class Envelope(BaseModel):
    """The outer shape of every message; ``data`` is validated per type afterwards."""

    model_config = ConfigDict(extra="allow")

    label: str
    type: str
    id: str | None = None
    data: Any = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class AboutClient(_Data):
    library: str
    library_version: str | None = None
    platform: str | None = None
    platform_version: str | None = None
    platform_details: Any = None


class ClientReadyData(_Data):
    version: str | None = None
    about: Any = None


class ClientMessageData(_Data):
    t: str
    d: Any = None


class SendTextOptions(_Data):
    run_immediately: bool = True
    audio_response: bool = True


class SendTextData(_Data):
    content: str
    options: SendTextOptions = Field(default_factory=SendTextOptions)


class AppendToContextData(_Data):
    role: str = Field(min_length=1)  # any role the context takes (the 1.0 servers passed it on)
    content: Any
    run_immediately: bool = False


class FunctionCallResultData(_Data):
    function_name: str
    tool_call_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None


class RawAudioData(_Data):
    base64Audio: str
    sampleRate: int = Field(gt=0)
    numChannels: int = Field(gt=0)


class RawAudioBatchData(_Data):
    base64AudioBatch: list[str] = Field(min_length=1)
    sampleRate: int = Field(gt=0)
    numChannels: int = Field(gt=0)


DTMFButton = Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"]


class DTMFData(_StrictData):
    buttons: list[DTMFButton] = Field(min_length=1)


class UIEventData(_Data):
    event: str
    payload: Any = None


class UISnapshotData(_Data):
    tree: dict[str, Any]


class UICancelJobGroupData(_Data):
    job_id: str
    reason: str | None = None


class OptionValue(_Data):
    name: str
    value: Any = None


class ServiceConfig(_Data):
    service: str
    options: list[OptionValue]


class UpdateConfigData(_Data):
    config: list[ServiceConfig]
    interrupt: bool = False


class ActionArgumentValue(_Data):
    name: str
    value: Any = None


class ActionData(_Data):
    service: str
    action: str
    arguments: list[ActionArgumentValue] | None = None


class _NoData(_Data):
    """Messages without a payload (anything sent is ignored)."""


#: Client message type -> the model of its ``data`` (None: no data needed).
CLIENT_DATA: dict[str, type[BaseModel]] = {
    "client-ready": ClientReadyData,
    "client-message": ClientMessageData,
    "send-text": SendTextData,
    "append-to-context": AppendToContextData,
    "llm-function-call-result": FunctionCallResultData,
    "disconnect-bot": _NoData,
    "raw-audio": RawAudioData,
    "raw-audio-batch": RawAudioBatchData,
    "dtmf": DTMFData,
    "ui-event": UIEventData,
    "ui-snapshot": UISnapshotData,
    "ui-cancel-job-group": UICancelJobGroupData,
    # The 0.x generation's service/action/config API.
    "describe-config": _NoData,
    "describe-actions": _NoData,
    "get-config": _NoData,
    "update-config": UpdateConfigData,
    "action": ActionData,
}

#: Types whose sender must get an answer with the same id.
CLIENT_REQUESTS = {"client-message", "describe-config", "describe-actions", "get-config", "action"}


# -- server -> client -----------------------------------------------------------------------


class AboutServer(_ServerData):
    library: str
    library_version: str


class BotCapabilities(_ServerData):
    """What the bot does in this session (protocol 2.2.0); None or absent: unknown."""

    audio_in: bool | None = None
    audio_out: bool | None = None
    video_in: bool | None = None
    screen_in: bool | None = None
    video_out: bool | None = None
    metrics: bool | None = None


class BotReadyData(_ServerData):
    version: str
    about: AboutServer | None = None
    capabilities: BotCapabilities | None = None  # protocol 2.2.0
    config: list[ServiceConfig] | None = None  # only for clients below 1.0


class ErrorData(_ServerData):
    error: str
    fatal: bool = False
    message: str | None = None  # the clients' deprecated twin of `error`


class ErrorResponseData(_ServerData):
    error: str


class ServerResponseData(_ServerData):
    t: str
    d: Any = None


class TranscriptionData(_ServerData):
    text: str
    user_id: str
    timestamp: str
    final: bool


class TextData(_ServerData):
    text: str


class UserInputData(_ServerData):
    """``user-input`` (protocol 2.2.0): what the user said or typed, the twin of ``bot-output``."""

    text: str
    input_type: Literal["transcription", "chat", "backchannel"]
    timestamp: str
    final: bool
    user_id: str | None = None
    msg_id: str | None = None  # for chat: the id of the client's send-text


class SpokenProgress(_ServerData):
    accumulated_text: str
    remaining_text: str


class BotOutputData(_ServerData):
    text: str
    output_type: str | None = None  # protocol 2.2.0's name for aggregated_by
    text_type: str | None = None  # a deprecated 2.2.0 alias of output_type
    aggregated_by: str | None = None
    segment_id: int | None = None  # a number in the clients' types and the peer's output
    spoken: bool | None = None  # the 1.x clients' field
    will_be_spoken: bool | None = None
    spoken_status: Literal["new", "in-progress", "completed"] | None = None
    spoken_progress: SpokenProgress | None = None


class BotLLMMarkerData(_ServerData):
    """``bot-llm-marker`` (protocol 2.2.0): structured LLM output kept out of the spoken text."""

    text: str
    kind: str | None = None
    raw: str | None = None
    markers: list[str] | None = None


class AudioData(_ServerData):
    """``bot-tts-audio``: base64 PCM16 with its format (also the JSON wire's bot audio)."""

    audio: str
    sample_rate: int = Field(gt=0)
    num_channels: int = Field(gt=0)


class FunctionCallStartedData(_ServerData):
    function_name: str | None = None


class FunctionCallInProgressData(_ServerData):
    tool_call_id: str
    function_name: str | None = None
    arguments: Any = None


class FunctionCallStoppedData(_ServerData):
    tool_call_id: str
    cancelled: bool
    function_name: str | None = None
    result: Any = None


class LegacyFunctionCallData(_ServerData):
    tool_call_id: str
    function_name: str | None = None
    args: Any = None


class SearchResult(_ServerData):
    text: str
    confidence: list[float]


class SearchOrigin(_ServerData):
    site_uri: str | None = None
    site_title: str | None = None
    results: list[SearchResult]


class SearchResponseData(_ServerData):
    search_result: str | None = None
    rendered_content: str | None = None
    origins: list[SearchOrigin]


class UICommandData(_ServerData):
    command: str
    payload: Any = None


class UIJobGroupData(_ServerData):
    """One ``ui-job-group`` envelope; which fields it needs depends on its ``kind``."""

    kind: Literal["group_started", "job_update", "job_completed", "group_completed"]
    job_id: str
    at: int
    workers: list[str] | None = None  # group_started
    label: str | None = None  # group_started
    cancellable: bool | None = None  # group_started
    worker_name: str | None = None  # job_update, job_completed
    data: Any = None  # job_update
    status: str | None = None  # job_completed
    response: Any = None  # job_completed

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> UIJobGroupData:
        needed = {
            "group_started": ("cancellable",),  # workers may be left out (None) by the peer
            "job_update": ("worker_name",),
            "job_completed": ("worker_name", "status"),
            "group_completed": (),
        }[self.kind]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} envelope needs {', '.join(missing)}")
        return self


class AppendToContextResultData(_ServerData):
    result: dict[str, Any] | str


class AudioLevelData(_ServerData):
    value: float


class ActionResponseData(_ServerData):
    result: Any = None


class ConfigData(_ServerData):
    config: list[Any]


class ActionsData(_ServerData):
    actions: list[Any]


class _NoPayload(_ServerData):
    """Server events that carry no data."""


#: Server message type -> the model its ``data`` must fit (``_NoPayload``: no data key).
#: The processor and observer build plain dicts (cheap); tests check them against these models.
SERVER_DATA: dict[str, type[BaseModel]] = {
    "bot-ready": BotReadyData,
    "error": ErrorData,
    "error-response": ErrorResponseData,
    "server-response": ServerResponseData,
    "user-started-speaking": _NoPayload,
    "user-stopped-speaking": _NoPayload,
    "vad-user-started-speaking": _NoPayload,
    "vad-user-stopped-speaking": _NoPayload,
    "user-mute-started": _NoPayload,
    "user-mute-stopped": _NoPayload,
    "bot-started-speaking": _NoPayload,
    "bot-stopped-speaking": _NoPayload,
    "bot-interrupted": _NoPayload,
    "user-transcription": TranscriptionData,
    "user-input": UserInputData,
    "stt-raw-text": TranscriptionData,
    "user-llm-text": TextData,
    "bot-llm-started": _NoPayload,
    "bot-llm-stopped": _NoPayload,
    "bot-llm-text": TextData,
    "llm-raw-text": TextData,
    "bot-llm-marker": BotLLMMarkerData,
    "bot-llm-search-response": SearchResponseData,
    "bot-transcription": TextData,
    "bot-tts-started": _NoPayload,
    "bot-tts-stopped": _NoPayload,
    "bot-tts-text": TextData,
    "tts-raw-text": TextData,
    "bot-tts-audio": AudioData,
    "bot-output": BotOutputData,
    "llm-function-call-started": FunctionCallStartedData,
    "llm-function-call-in-progress": FunctionCallInProgressData,
    "llm-function-call-stopped": FunctionCallStoppedData,
    "llm-function-call": LegacyFunctionCallData,
    "user-audio-level": AudioLevelData,
    "bot-audio-level": AudioLevelData,
    "system-log": TextData,
    "ui-command": UICommandData,
    "ui-job-group": UIJobGroupData,
    "append-to-context-result": AppendToContextResultData,
    "action-response": ActionResponseData,
    "config": ConfigData,
    "config-available": ConfigData,
    "actions-available": ActionsData,
}
FREE_FORM_SERVER_TYPES = {"server-message", "metrics"}


def validate_server_message(message: dict[str, Any], *, strict: bool = True) -> None:
    """Raise ValueError unless ``message`` is a well-formed server message (for tests).

    ``strict`` (for voxloop's own output): the type must be known and no field may be unknown.
    Lenient (what a published client accepts from a newer server): an unknown type passes (the
    clients ignore it) and so do extra fields; known fields must still have the right types.
    """
    if message.get("label") != LABEL:
        raise ValueError(f"wrong label in {message}")
    extra = set(message) - {"label", "type", "id", "data"}
    if extra and strict:
        raise ValueError(f"unexpected keys {extra} in {message}")
    type_ = message.get("type")
    if not isinstance(type_, str) or not type_:
        raise ValueError(f"'type' must be a non-empty string: {message}")
    if type_ in FREE_FORM_SERVER_TYPES:
        return
    model = SERVER_DATA.get(type_)
    if model is None:
        if strict:
            raise ValueError(f"unknown server message type {type_!r}")
        return
    if model is _NoPayload:
        if "data" in message and (strict or not isinstance(message["data"], dict)):
            raise ValueError(f"{type_} carries no data: {message}")
        return
    if not isinstance(message.get("data"), dict):
        raise ValueError(f"{type_} needs a data object: {message}")
    validated = model.model_validate(message["data"])
    if any(value is None for value in message["data"].values()):
        raise ValueError(f"None fields must be left out: {message}")
    if strict and (unknown := _unknown_fields(validated)):
        raise ValueError(f"unknown fields {sorted(unknown)} in {type_}: {message}")


def _unknown_fields(model: BaseModel, where: str = "") -> list[str]:
    """Fields of server models (nested ones too) that no model declares."""
    found = [f"{where}{name}" for name in (model.model_extra or {})] if isinstance(model, _ServerData) else []
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found += _unknown_fields(item, f"{where}{name}.")
    return found


def server_message(type_: str, data: Any = None, *, id: str | None = None) -> dict[str, Any]:
    """A server message as the JSON-ready dict the wire carries."""
    if isinstance(data, BaseModel):
        data = data.model_dump(exclude_none=True, mode="json")
    message: dict[str, Any] = {"label": LABEL, "type": type_}
    if id is not None:
        message["id"] = id
    if data is not None:
        message["data"] = data
    return message
