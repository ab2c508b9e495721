"""Fixtures for the agent tests: one scripted model server for the whole session."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from model_server import ModelServer  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from workbench.agents import telemetry  # noqa: E402
from workbench.agents.models import OpenAIChatClient  # noqa: E402

_names = itertools.count()


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A model name unique to this test, to script on the shared server."""
    return f"{request.node.name}-{next(_names)}"


@pytest.fixture
async def make_client(model_server: ModelServer) -> AsyncIterator[Callable[..., OpenAIChatClient]]:
    """`make_client(model, **options)`: an `OpenAIChatClient` on the scripted server, closed
    when the test ends (an HTTP pool left to the garbage collector outlives the event loop)."""
    made: list[OpenAIChatClient] = []

    def make(model: str, **options: Any) -> OpenAIChatClient:
        options.setdefault("retry_backoff", 0.01)
        made.append(OpenAIChatClient(model, base_url=model_server.base_url, **options))
        return made[-1]

    yield make
    for c in made:
        await c.close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of this test, recorded in memory (nothing is installed globally)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    original = telemetry._tracer
    telemetry._tracer = provider.get_tracer("test")
    yield exporter
    telemetry._tracer = original
