r"""A restaurant's phone host: checks tables and books them through function calls.

    OPENAI_API_KEY=sk-... voxloop run --bot examples/restaurant_bot.py
    # or a local Ollama server:
    OPENAI_BASE_URL=http://localhost:11434/v1 VOXLOOP_LLM_MODEL=llama3.2 \
        voxloop run --bot examples/restaurant_bot.py

What it shows: tools with slow handlers (they run beside the audio, never blocking it), a timeout per
function, a booking that survives a barge-in (``cancel_on_interruption=False``), and the offline speech
pipeline around a real LLM.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from voxloop.bots import SessionInfo
from voxloop.bots.default import preload as preload_models
from voxloop.context import FunctionSchema, LLMContext, LLMContextAggregatorPair
from voxloop.pipeline import Pipeline, PipelineParams, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.services import FunctionCallParams
from voxloop.services.local import PiperTTSService, WhisperSTTService
from voxloop.services.openai import OpenAILLMService
from voxloop.transports import Transport
from voxloop.turns import VADProcessor

INSTRUCTIONS = (
    "You are the host of Trattoria Voxloop, answering the phone. Keep every reply to one or two short "
    "spoken sentences. Before booking, check availability, then confirm the name, the day, the time and "
    "the number of guests with the caller. Opening hours: 12:00-14:30 and 18:30-22:30, closed on Mondays."
)

TOOLS = [
    FunctionSchema(
        name="check_availability",
        description="Whether a table is free.",
        properties={
            "day": {"type": "string", "description": "e.g. 'Friday' or '2026-12-04'"},
            "time": {"type": "string", "description": "24-hour time, e.g. '19:30'"},
            "guests": {"type": "integer", "minimum": 1, "maximum": 12},
        },
        required=["day", "time", "guests"],
    ),
    FunctionSchema(
        name="book_table",
        description="Book a table once the caller has confirmed the details.",
        properties={
            "name": {"type": "string"},
            "day": {"type": "string"},
            "time": {"type": "string"},
            "guests": {"type": "integer", "minimum": 1, "maximum": 12},
        },
        required=["name", "day", "time", "guests"],
    ),
]

_bookings: list[dict[str, Any]] = []  # stands in for the restaurant's booking system


async def check_availability(params: FunctionCallParams) -> None:
    await asyncio.sleep(0.8)  # a slow reservations API: the bot keeps listening meanwhile
    hour = int(str(params.arguments.get("time", "0")).split(":")[0] or 0)
    taken = sum(
        1
        for b in _bookings
        if b["day"] == params.arguments.get("day") and b["time"] == params.arguments.get("time")
    )
    free = (12 <= hour < 15 or 18 <= hour < 23) and taken < 3
    await params.result_callback({"available": free, "alternatives": [] if free else ["19:00", "21:00"]})


async def book_table(params: FunctionCallParams) -> None:
    await asyncio.sleep(0.5)
    booking = {key: params.arguments.get(key) for key in ("name", "day", "time", "guests")}
    _bookings.append(booking)
    await params.result_callback({"confirmed": True, "reference": f"TV-{len(_bookings):04d}"})


async def preload() -> None:
    if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        raise SystemExit(
            "this example needs an LLM: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server"
        )
    await preload_models()


def create_bot(transport: Transport, session: SessionInfo) -> PipelineTask:
    context = LLMContext([{"role": "system", "content": INSTRUCTIONS}], tools=TOOLS)
    aggregators = LLMContextAggregatorPair(context)
    llm = OpenAILLMService(model=os.environ.get("VOXLOOP_LLM_MODEL", "gpt-4.1-mini"))
    llm.register_function("check_availability", check_availability, timeout_secs=5)
    # A booking that started must finish even if the caller talks over the bot.
    llm.register_function("book_table", book_table, cancel_on_interruption=False, timeout_secs=10)
    pipeline = Pipeline(
        [
            RTVIProcessor(),
            transport.input(),
            VADProcessor(),
            WhisperSTTService(),
            aggregators.user(),
            llm,
            PiperTTSService(),
            transport.output(),
            aggregators.assistant(),
        ]
    )
    return PipelineTask(pipeline, params=PipelineParams(enable_metrics=True), idle_timeout_secs=300)
