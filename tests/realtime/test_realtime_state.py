"""The Realtime service's state objects on their own: pure, no connection, no event loop."""

from __future__ import annotations

import pytest

pytest.importorskip("openai")

from voxloop.services.openai._realtime_actions import Outbox
from voxloop.services.openai._realtime_responses import Request, ResponseRequests
from voxloop.services.openai._realtime_turn import ImageThrottle, InputTranscripts, PendingCalls, TurnState


def test_a_request_before_the_session_is_set_up_waits_for_it() -> None:
    requests = ResponseRequests()
    assert requests.request(ready=False) is Request.ON_READY
    assert requests.take_on_ready() is True
    assert requests.take_on_ready() is False  # taken once
    assert requests.request(ready=True) is Request.SEND


def test_requests_coalesce_while_one_is_on_its_way_or_active() -> None:
    requests = ResponseRequests()
    assert requests.request(ready=True) is Request.SEND
    assert requests.request(ready=True) is Request.LATER  # response.create sent, not created yet
    response = requests.opened("resp_1")
    assert requests.active and not requests.in_flight
    assert requests.request(ready=True) is Request.LATER  # the response is active
    assert requests.finished("resp_1") is response and not response.active
    assert requests.take_pending() is True
    assert requests.take_pending() is False
    assert requests.request(ready=True) is Request.SEND


def test_a_busy_refusal_is_retried_once_until_a_response_is_created() -> None:
    requests = ResponseRequests()
    requests.request(ready=True)
    requests.refused_as_busy()
    assert requests.take_pending() is True and not requests.in_flight
    requests.request(ready=True)
    requests.refused_as_busy()
    assert requests.take_pending() is False  # not forever
    requests.opened("resp_2")  # a created response allows one retry again
    requests.finished("resp_2")
    requests.request(ready=True)
    requests.refused_as_busy()
    assert requests.take_pending() is True


def test_only_the_current_live_response_gets_its_deltas() -> None:
    requests = ResponseRequests()
    assert requests.live("resp_1") is None
    response = requests.opened("resp_1")
    assert requests.live("resp_1") is response
    assert requests.live("resp_0") is None
    response.interrupted = True
    assert requests.live("resp_1") is None
    assert requests.finished("resp_0") is None and response.active


def test_a_lost_connection_asks_again_for_the_answer_it_cut_off_unless_the_user_interrupted() -> None:
    requests = ResponseRequests()
    requests.opened("resp_1")
    assert requests.connection_lost(resume=True) is not None
    assert requests.take_on_ready() is True
    interrupted = requests.opened("resp_2")
    interrupted.interrupted = True
    assert requests.connection_lost(resume=True) is interrupted
    assert requests.take_on_ready() is False
    requests.opened("resp_3")
    requests.connection_lost(resume=False)  # we closed it (a reset): nothing to resume
    assert requests.take_on_ready() is False
    assert requests.connection_lost(resume=True) is None  # nothing active any more


def test_a_response_numbers_its_sentences() -> None:
    response = ResponseRequests().opened("resp_1")
    assert response.start_sentence_if_new() == 1
    response.sentence = "Hello"
    assert response.start_sentence_if_new() == 1  # same sentence
    response.sentence = ""
    assert response.start_sentence_if_new() == 2


def test_the_outbox_numbers_events_and_remembers_what_they_were() -> None:
    outbox = Outbox()
    first = outbox.event("truncate", "conversation.item.truncate", item_id="item_1")
    append = outbox.event("append", "input_audio_buffer.append", audio="AAAA")
    assert first.event == {
        "type": "conversation.item.truncate",
        "event_id": "vx_truncate_1",
        "item_id": "item_1",
    }
    assert append.event["event_id"] == "vx_append_2"
    assert outbox.what("vx_truncate_1") == "truncate"
    assert outbox.what("vx_append_2") == ""  # audio is not remembered
    assert outbox.what(None) == ""
    for _ in range(200):
        outbox.event("item", "conversation.item.create", item={})
    assert outbox.what("vx_truncate_1") == ""  # a bounded memory


def test_turn_state_tracks_unanswered_audio() -> None:
    turn = TurnState()
    turn.audio_committed()
    assert turn.unanswered_audio and not turn.responded_since_input
    turn.answered()
    assert not turn.unanswered_audio and turn.responded_since_input


def test_input_transcripts_accumulate_and_stay_bounded() -> None:
    transcripts = InputTranscripts()
    assert transcripts.delta("item_1", "Hel") == "Hel"
    assert transcripts.delta("item_1", "lo") == "Hello"
    transcripts.end("item_1")
    assert transcripts.delta("item_1", "again") == "again"
    for index in range(100):
        transcripts.delta(f"item_x{index}", "never completed")
    assert len(transcripts) == 64


def test_pending_calls_are_taken_once() -> None:
    pending = PendingCalls()
    pending.defer([("call_1", "f", "{}")])
    pending.defer([("call_2", "g", "{}")])
    assert pending.take() == [("call_1", "f", "{}"), ("call_2", "g", "{}")]
    assert pending.take() == [] and len(pending) == 0


def test_the_image_throttle_lets_one_image_through_per_interval() -> None:
    throttle = ImageThrottle(interval_secs=1.0)
    assert throttle.due(0)
    assert not throttle.due(999_999_999)
    assert throttle.due(1_000_000_000)
    assert not throttle.due(1_500_000_000)
