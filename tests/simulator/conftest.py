"""Fixtures for the simulator's own tests: no Django, no database."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from simulator.testing import SimulatorServer


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """A simulator answering without delays, shared by the whole session."""
    with SimulatorServer(latency_scale=0) as server:
        yield server.url


@pytest.fixture
def client(simulator_url: str) -> openai.OpenAI:
    """Strict: every answer must match the SDK's types exactly. No retries: failures surface."""
    return openai.OpenAI(
        base_url=simulator_url, api_key="test", max_retries=0, _strict_response_validation=True
    )


@pytest.fixture
def async_client(simulator_url: str) -> openai.AsyncOpenAI:
    # Function-scoped: an AsyncOpenAI is bound to the event loop of its first request.
    return openai.AsyncOpenAI(
        base_url=simulator_url, api_key="test", max_retries=0, _strict_response_validation=True
    )
