"""Tracing configured the standard way reaches a collector: OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``.

A small collector (a real HTTP server on loopback) receives what the SDK's OTLP exporter sends when the
server's telemetry comes from the environment, and the test decodes it with the OTLP protobuf types.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from helpers.server import running_server, start_websocket_session
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.telemetry import Telemetry
from voxloop.testing.rtvi_client import RTVIClient


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, bytes]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert isinstance(self.server, Collector)
        self.server.requests.append((self.path, body))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, name="otlp-collector")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


async def test_a_session_span_reaches_the_configured_collector(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    telemetry = Telemetry.from_environment()
    assert telemetry.tracer is not None
    async with running_server(ServerConfig(bot=load_bot("echo"), telemetry=telemetry)) as (base, app):
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.ready()
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    await asyncio.to_thread(telemetry.shutdown)  # flushes the batch to the collector
    assert collector.requests and all(path == "/v1/traces" for path, _ in collector.requests)
    spans, services = [], set()
    for _, body in collector.requests:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for attr in resource_spans.resource.attributes:
                if attr.key == "service.name":
                    services.add(attr.value.string_value)
            for scope in resource_spans.scope_spans:
                spans.extend(scope.spans)
    assert services == {"support-bot"}
    (session,) = [s for s in spans if s.name == "voxloop.session"]
    attrs = {a.key: a.value for a in session.attributes}
    assert attrs["voxloop.transport"].string_value == "websocket"
    assert len(attrs["voxloop.session.id"].string_value) == 12
    assert session.end_time_unix_nano > session.start_time_unix_nano
