"""Settings for voice activity detection and user turn-taking.

The VAD's job is to cut speech into segments quickly (its ``stop_secs`` is short so the STT can start
transcribing at once); the user aggregator decides when the *turn* ends, with a longer silence and only
once the STT has delivered the words. Both objects are plain mutable dataclasses: the user aggregator
reads its params at every decision, so changing a field at run time takes effect on the next event.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VADParams:
    """Voice activity detection settings (see :class:`voxloop.audio.SileroVAD`).

    - ``confidence``: model probability a 32 ms frame needs to count as speech.
    - ``start_secs``: speech needed before "started" (0.2 s: short enough for a quick barge-in, long
      enough to skip clicks).
    - ``stop_secs``: silence needed before "stopped" (0.3 s: cuts segments for the STT quickly; the
      turn end is decided later with :attr:`UserTurnParams.stop_secs`).
    - ``min_volume``: level gate in 0..1 (0.25 is -45 dBFS), drops near-silence only.
    - ``ending_secs``: silence inside speech after which the VAD says the segment is probably ending
      (``VADSpeechEndingFrame``), and then whether speech came back (``VADSpeechResumedFrame``), so the
      STT and an end-of-turn detector start on the segment that much before the stop. None (the default,
      and the default bot's): off. 0.1 s is 4 frames (0.128 s) against a 0.2 s stop's 7: drafts for
      pauses between words are thrown away, and cost one transcription each.
    """

    confidence: float = 0.7
    start_secs: float = 0.2
    stop_secs: float = 0.3
    min_volume: float = 0.25
    ending_secs: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0 or not 0.0 <= self.min_volume <= 1.0:
            raise ValueError("confidence and min_volume must be within 0..1")
        if self.start_secs < 0 or self.stop_secs < 0:
            raise ValueError("start_secs and stop_secs must not be negative")
        if self.ending_secs is not None and not 0 <= self.ending_secs < self.stop_secs:
            raise ValueError("ending_secs must be at least 0 and shorter than stop_secs")


@dataclass
class UserTurnParams:
    """When a user turn starts and ends, and when the user may cut the bot off.

    Turn end:

    - ``stop_secs`` (0.7 s): silence after the end of speech before the turn may end. Counted from
      where the speech ended (the VAD stop event minus the VAD's own ``stop_secs``), so with a 0.3 s
      VAD it waits 0.4 s more after the VAD event. 0.7 s keeps mid-sentence pauses inside one turn
      while staying well under a second of dead air; the STT runs during that wait anyway.
    - The turn also waits for the STT's ``TranscriptionFinishedFrame`` of every segment it holds, at
      most ``transcription_timeout_secs`` (2.0 s) after the segment's VAD stop (for STTs that never
      send it; generous because a local Whisper may take a second on a long segment).
    - With an end-of-turn detector (``LLMUserAggregator(turn_detector=...)``, the default bot's Smart Turn),
      ``stop_secs`` is not used: at each pause the detector decides. "Done" ends the turn as soon as the
      pause's words are transcribed and ``min_silence_secs`` (0.5 s; 0.35 s is enough with the hold below)
      have passed since the speech ended (comma pauses measure 0.14-0.3 s, and Whisper can write a full stop
      at a comma: the VAD's first frame of the "um" after one comes 0.3-0.33 s after the speech ended, and
      holds the turn end for ``resume_hold_secs`` when the VAD reports it, :attr:`VADParams.ending_secs`);
      "not done" (a thinking pause after "for", "and", "um") keeps it open until the user goes on or
      ``max_silence_secs`` (2.0 s) of silence have passed since the speech ended. The same limit applies while
      the detector has not answered yet. "Likely" (a finished sentence whose words the STT was sure of, which
      the audio model hears as unfinished) waits ``likely_silence_secs`` (1.2 s): a finished sentence may
      still go on ("Could you play some music? ... by the Beatles" after 0.8 s, heard by the VAD 0.2 s later).
      "Maybe" (the words and the audio disagree otherwise) waits ``maybe_silence_secs`` (1.6 s): longer than a
      thinking pause of 1.2 s plus the 0.2 s the VAD takes to hear speech again, shorter than the limit.
    - ``resume_hold_secs`` (0.3 s): with a VAD that reports speech coming back before its start decision
      (:attr:`VADParams.ending_secs`), a frame of speech after a pause holds the turn end this long (the
      VAD's 0.2 s start plus a frame or two), so a "done" after a short pause (a comma before "um") waits
      to see whether the user goes on; noise costs at most this much.
    - ``turn_timeout_secs`` (5.0 s): safety net; an open turn with no voice activity and no
      transcription for that long is ended whatever else is pending.

    Turn start and interruptions (barge-in):

    - ``start_on_transcription``: a transcription with no turn open (an STT without VAD, or a VAD
      miss) starts a turn.
    - ``allow_interruptions``: False ignores the user entirely while the bot is thinking or speaking.
    - While the bot is speaking, speech interrupts it only after ``interruption_min_speech_secs``
      (0.4 s) of continuous speech, counted from the speech onset, and once at least
      ``interruption_min_words`` words (0 = no word check) were transcribed. Shorter speech is
      treated as noise: no turn, no interruption, and its words never reach the context. The VAD
      processor's speech ticks (``UserSpeakingFrame``, every 0.1 s, only on frames that are speech)
      prove the user is still talking, so a barge-in lands 0.4-0.5 s after the onset (0.4 s rejects
      coughs, clicks and most one-syllable backchannels; raise the word count to reject "yeah" /
      "okay" too, at the cost of waiting for the STT; 0 interrupts at the VAD start).
    - ``pause_on_speech`` (True): speech that starts while the bot speaks and is not decided yet pauses
      the bot's audio at once (no more is written; nothing is dropped and the bot still counts as
      speaking), so the bot falls silent within a few ms of the VAD start instead of 0.2-0.3 s later.
      A confirmed barge-in interrupts as above; noise resumes the audio exactly where it stopped (the
      user hears a gap the length of the noise plus the VAD's stop delay, about 0.3-0.5 s, longer when
      ``interruption_min_words`` waits for the STT). False: the bot talks on until the barge-in.
    - While the bot is thinking (the LLM runs, nothing audible yet), the same with
      ``thinking_min_speech_secs`` (0: the user simply continues talking, so the pending reply is
      stale and is cancelled at once) and ``thinking_min_words``.
    - ``user_idle_timeout_secs``: fire ``on_user_turn_idle`` when the bot has finished and the user
      says nothing for that long (None: off).
    """

    stop_secs: float = 0.7
    min_silence_secs: float = 0.5
    likely_silence_secs: float = 1.2
    maybe_silence_secs: float = 1.6
    max_silence_secs: float = 2.0
    resume_hold_secs: float = 0.3
    transcription_timeout_secs: float = 2.0
    turn_timeout_secs: float = 5.0
    start_on_transcription: bool = True
    allow_interruptions: bool = True
    interruption_min_speech_secs: float = 0.4
    interruption_min_words: int = 0
    pause_on_speech: bool = True
    thinking_min_speech_secs: float = 0.0
    thinking_min_words: int = 0
    user_idle_timeout_secs: float | None = None


@dataclass
class AssistantAggregatorParams:
    """Assistant aggregator settings.

    - ``run_llm_after_function_calls``: push the context back to the LLM once every call of a
      response has settled (unless a result says ``run_llm=False``).
    """

    run_llm_after_function_calls: bool = True
