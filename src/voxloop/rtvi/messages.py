"""RTVI message models, both directions, serialised exactly as the published clients expect.

Every message is ``{"label": "rtvi-ai", "type": ..., "id"?: ..., "data"?: ...}``. Server
messages leave out fields that are None; ``id`` is echoed on answers so clients can match them to
their requests. Client ``data`` models validate what a client sends; unknown extra fields are
tolerated (newer clients add fields), wrong types are not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LABEL = "rtvi-ai"


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class _StrictData(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    role: Literal["user", "assistant", "system"]
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


class AboutServer(_Data):
    library: str
    library_version: str


class BotReadyData(_Data):
    version: str
    about: AboutServer | None = None
    config: list[ServiceConfig] | None = None  # only for clients below 1.0


class ErrorData(_StrictData):
    error: str
    fatal: bool = False


class ErrorResponseData(_StrictData):
    error: str


class ServerResponseData(_StrictData):
    t: str
    d: Any = None


class TranscriptionData(_StrictData):
    text: str
    user_id: str
    timestamp: str
    final: bool


class TextData(_StrictData):
    text: str


class SpokenProgress(_StrictData):
    accumulated_text: str
    remaining_text: str


class BotOutputData(_StrictData):
    text: str
    aggregated_by: str | None = None
    segment_id: str | None = None
    spoken: bool | None = None  # the 1.x clients' field
    will_be_spoken: bool | None = None
    spoken_status: Literal["new", "in-progress", "completed"] | None = None
    spoken_progress: SpokenProgress | None = None


class FunctionCallStartedData(_StrictData):
    function_name: str | None = None


class FunctionCallInProgressData(_StrictData):
    tool_call_id: str
    function_name: str | None = None
    arguments: Any = None


class FunctionCallStoppedData(_StrictData):
    tool_call_id: str
    cancelled: bool
    function_name: str | None = None
    result: Any = None


class LegacyFunctionCallData(_StrictData):
    function_name: str
    tool_call_id: str
    args: Any = None


class AudioLevelData(_StrictData):
    value: float


class ActionResponseData(_StrictData):
    result: Any = None


class ConfigData(_StrictData):
    config: list[Any]


class ActionsData(_StrictData):
    actions: list[Any]


class _NoPayload(_StrictData):
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
    "user-llm-text": TextData,
    "bot-llm-started": _NoPayload,
    "bot-llm-stopped": _NoPayload,
    "bot-llm-text": TextData,
    "bot-transcription": TextData,
    "bot-tts-started": _NoPayload,
    "bot-tts-stopped": _NoPayload,
    "bot-tts-text": TextData,
    "bot-output": BotOutputData,
    "llm-function-call-started": FunctionCallStartedData,
    "llm-function-call-in-progress": FunctionCallInProgressData,
    "llm-function-call-stopped": FunctionCallStoppedData,
    "llm-function-call": LegacyFunctionCallData,
    "user-audio-level": AudioLevelData,
    "bot-audio-level": AudioLevelData,
    "system-log": TextData,
    "action-response": ActionResponseData,
    "config": ConfigData,
    "config-available": ConfigData,
    "actions-available": ActionsData,
}
FREE_FORM_SERVER_TYPES = {"server-message", "metrics"}


def validate_server_message(message: dict[str, Any]) -> None:
    """Raise ValueError unless ``message`` is a well-formed server message (for tests)."""
    if message.get("label") != LABEL:
        raise ValueError(f"wrong label in {message}")
    extra = set(message) - {"label", "type", "id", "data"}
    if extra:
        raise ValueError(f"unexpected keys {extra} in {message}")
    type_ = message.get("type")
    if type_ in FREE_FORM_SERVER_TYPES:
        return
    model = SERVER_DATA.get(str(type_))
    if model is None:
        raise ValueError(f"unknown server message type {type_!r}")
    if model is _NoPayload:
        if "data" in message:
            raise ValueError(f"{type_} carries no data: {message}")
        return
    if not isinstance(message.get("data"), dict):
        raise ValueError(f"{type_} needs a data object: {message}")
    model.model_validate(message["data"])
    if any(value is None for value in message["data"].values()):
        raise ValueError(f"None fields must be left out: {message}")


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
