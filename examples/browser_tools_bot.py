"""An assistant that uses functions the *client* runs: the page (or app) answers them over RTVI.

    OPENAI_API_KEY=sk-... voxloop run --bot examples/browser_tools_bot.py

``get_screen_size`` and ``show_message`` are registered without a handler, so the call goes to the client
as ``llm-function-call-in-progress`` (with the arguments, thanks to the ``full`` report level) and the
client answers with ``llm-function-call-result``; the LLM then carries on with that result. With
``@pipecat-ai/client-js``:

    client.registerFunctionCallHandler("get_screen_size", async () => ({
      width: innerWidth, height: innerHeight,
    }));

A client that never answers is covered by the timeout: the LLM is told the call timed out.
"""

from __future__ import annotations

import os

from voxloop.bots import SessionInfo
from voxloop.bots.default import preload  # noqa: F401
from voxloop.context import FunctionSchema, LLMContext, LLMContextAggregatorPair
from voxloop.pipeline import Pipeline, PipelineParams, PipelineTask
from voxloop.rtvi import FunctionCallReportLevel, RTVIObserverParams, RTVIProcessor
from voxloop.services.local import EspeakTTSService, WhisperSTTService
from voxloop.services.openai import OpenAILLMService
from voxloop.transports import Transport
from voxloop.turns import VADProcessor

TOOLS = [
    FunctionSchema("get_screen_size", "The size of the user's browser window, in CSS pixels."),
    FunctionSchema(
        "show_message",
        "Show a short text on the user's screen.",
        properties={"text": {"type": "string"}},
        required=["text"],
    ),
]


def create_bot(transport: Transport, session: SessionInfo) -> PipelineTask:
    context = LLMContext(
        [{"role": "system", "content": "You are a concise voice assistant. Use the tools when they help."}],
        tools=TOOLS,
    )
    aggregators = LLMContextAggregatorPair(context)
    llm = OpenAILLMService(model=os.environ.get("VOXLOOP_LLM_MODEL", "gpt-4.1-mini"))
    for tool in TOOLS:
        llm.register_function(tool.name, None, timeout_secs=10)  # no handler: the client answers
    rtvi = RTVIProcessor(
        observer_params=RTVIObserverParams(function_call_report_level={"*": FunctionCallReportLevel.FULL})
    )
    pipeline = Pipeline(
        [
            rtvi,
            transport.input(),
            VADProcessor(),
            WhisperSTTService(),
            aggregators.user(),
            llm,
            EspeakTTSService(),
            transport.output(),
            aggregators.assistant(),
        ]
    )
    return PipelineTask(pipeline, params=PipelineParams(enable_metrics=True), idle_timeout_secs=300)
