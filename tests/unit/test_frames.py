from __future__ import annotations

import dataclasses

from voxloop import frames as f


def test_ids_are_unique_and_increasing() -> None:
    a, b, c = f.TextFrame("a"), f.InputAudioRawFrame(b"", 16000, 1), f.EndFrame()
    assert a.id < b.id < c.id


def test_name_is_class_and_id() -> None:
    frame = f.TranscriptionFrame("hi", user_id="u", timestamp="t")
    assert frame.name == f"TranscriptionFrame#{frame.id}"
    assert str(frame) == frame.name


def test_base_fields_are_not_constructor_arguments() -> None:
    frame = f.TextFrame("hello")
    assert (frame.pts, frame.metadata, frame.broadcast_sibling_id) == (None, {}, None)
    assert frame.metadata is not f.TextFrame("x").metadata
    init_names = [x.name for x in dataclasses.fields(f.TextFrame) if x.init]
    assert init_names == ["text"]


def test_kinds() -> None:
    assert f.InputAudioRawFrame(b"", 16000, 1).system
    assert f.InterruptionFrame().system and f.CancelFrame().system and f.StartFrame().system
    assert not f.OutputAudioRawFrame(b"", 24000, 1).system
    assert isinstance(f.LLMFullResponseEndFrame(), f.ControlFrame)
    assert f.InputTextRawFrame("typed").system


def test_uninterruptible_marker() -> None:
    for frame in (
        f.EndFrame(),
        f.StopFrame(),
        f.FunctionCallResultFrame("fn", "id", {}, 1),
        f.FunctionCallInProgressFrame("fn", "id", {}),
        f.LLMUpdateSettingsFrame(settings={}),
        f.EndTaskFrame(),
    ):
        assert frame.uninterruptible, frame
        assert isinstance(frame, f.UninterruptibleFrame)
    assert not f.TextFrame("x").uninterruptible
    assert not f.CancelFrame().uninterruptible


def test_audio_fields() -> None:
    frame = f.OutputAudioRawFrame(audio=b"\x00\x00" * 480, sample_rate=24000, num_channels=1)
    assert frame.num_frames == 480
    assert frame.duration_secs == 0.02
    stereo = f.InputAudioRawFrame(audio=b"\x00" * 1280, sample_rate=16000, num_channels=2)
    assert stereo.num_frames == 320


def test_text_flags() -> None:
    assert f.LLMTextFrame("tok").includes_inter_frame_spaces
    assert not f.TextFrame("x").includes_inter_frame_spaces
    agg = f.TTSTextFrame("Hello there.", aggregated_by=f.AggregationType.SENTENCE)
    assert agg.will_be_spoken is False and agg.aggregated_by == "sentence"


def test_frames_compare_by_identity() -> None:
    a, b = f.TextFrame("same"), f.TextFrame("same")
    assert a != b and a == a
    assert len({a, b}) == 2


def test_fatal_error_frame() -> None:
    assert f.FatalErrorFrame("boom").fatal
    assert not f.ErrorFrame("oops").fatal


def test_worker_aliases() -> None:
    assert f.EndWorkerFrame is f.EndTaskFrame
    assert f.CancelWorkerFrame is f.CancelTaskFrame


def test_every_public_frame_is_exported() -> None:
    for name in f.__all__:
        assert hasattr(f, name)
    assert "Frame" in f.__all__ and "InterruptionFrame" in f.__all__
