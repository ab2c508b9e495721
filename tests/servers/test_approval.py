"""`require_approval`: a tool that needs a person's yes asks the calling client (a real SDK client's
elicitation callback, over real HTTP) and runs only on an explicit accept — never on a decline,
a silence, an error, or from a client or a background job that cannot be asked."""

from __future__ import annotations

from typing import Any

import anyio
import mcp.types as mt
import pytest
from mcp.client.session import ClientRequestContext
from serve_toolkit import ServeBench
from serving import http_client, serving

from servers import ServeSettings
from servers.audit import REFUSED
from servers.policy import PolicyConfig, PolicyRule

pytestmark = pytest.mark.anyio

TOKEN = "alice-" + "a" * 26
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def settings(timeout: float = 30.0) -> ServeSettings:
    return ServeSettings(
        transport="http", background=["slow"], tokens={"alice": TOKEN},
        policy=PolicyConfig(approval_timeout=timeout, rules=[
            PolicyRule(identities=["alice"], tools=["*"], require_approval=["slow"]),
        ]),
    )


class Person:
    """The human behind the client: answers approval questions as told, and remembers them."""

    def __init__(self, answer: mt.ElicitResult | mt.ErrorData | None) -> None:
        self.answer = answer
        self.asked: list[mt.ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: mt.ElicitRequestParams) -> Any:
        self.asked.append(params)
        if self.answer is None:
            await anyio.sleep(60)  # never answers in time
        return self.answer


ARGS = {"seconds": 0.05, "tag": "approved-run"}


async def test_runs_only_on_an_explicit_yes() -> None:
    bench = ServeBench()
    yes = Person(mt.ElicitResult(action="accept", content={"approve": True}))
    async with serving(bench, settings()) as served, \
            http_client(served.url, mode="legacy", headers=HEADERS, elicitation_callback=yes) as client:
        result = await client.call_tool("slow", ARGS)
        assert not result.is_error and result.content[0].text == "slept 0.05"
        assert len(yes.asked) == 1
        question = yes.asked[0]
        assert isinstance(question, mt.ElicitRequestFormParams)
        assert "'slow' needs your approval" in question.message and "approved-run" in question.message
        # tools without require_approval do not ask
        assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"
        assert len(yes.asked) == 1
    assert bench.finished == ["approved-run"]


@pytest.mark.parametrize(("answer", "why"), [
    (mt.ElicitResult(action="decline"), "was declined"),
    (mt.ElicitResult(action="cancel"), "was cancelled"),
    (mt.ElicitResult(action="accept", content={"approve": False}), "did not set 'approve' to true"),
    (mt.ElicitResult(action="accept", content={}), "did not set 'approve' to true"),
    (mt.ErrorData(code=-1, message="user closed the dialog"), "request failed (user closed the dialog)"),
], ids=["decline", "cancel", "accept-false", "accept-empty", "error"])
async def test_anything_but_yes_refuses(answer: mt.ElicitResult | mt.ErrorData, why: str) -> None:
    bench = ServeBench()
    async with serving(bench, settings()) as served, \
            http_client(served.url, mode="legacy", headers=HEADERS, elicitation_callback=Person(answer)) as client:
        result = await client.call_tool("slow", ARGS)
    assert result.is_error and why in result.content[0].text
    assert result.meta is not None and result.meta[REFUSED] == "approval"
    assert bench.running == set() and bench.finished == [] and bench.cancelled == []  # it never started


async def test_no_answer_in_time_refuses() -> None:
    bench = ServeBench()
    async with serving(bench, settings(timeout=0.5)) as served, \
            http_client(served.url, mode="legacy", headers=HEADERS, elicitation_callback=Person(None)) as client:
        with anyio.fail_after(20):  # bounded: the server gives up, the call does not hang
            result = await client.call_tool("slow", ARGS)
    assert result.is_error and "no answer to the approval request within 0.5 s" in result.content[0].text
    assert bench.finished == [] and bench.cancelled == []


@pytest.mark.parametrize("mode", ["legacy", "auto"], ids=["2025-11-25 without elicitation", "2026-07-28"])
async def test_a_client_that_cannot_be_asked_is_refused(mode: str) -> None:
    bench = ServeBench()
    async with serving(bench, settings()) as served, http_client(served.url, mode=mode, headers=HEADERS) as client:
        result = await client.call_tool("slow", ARGS)
    assert result.is_error and "this client cannot be asked" in result.content[0].text
    assert bench.finished == []


async def test_a_background_job_cannot_skip_the_question() -> None:
    bench = ServeBench()
    yes = Person(mt.ElicitResult(action="accept", content={"approve": True}))
    async with serving(bench, settings()) as served, \
            http_client(served.url, mode="legacy", headers=HEADERS, elicitation_callback=yes) as client:
        started = await client.call_tool("jobs__start", {"tool": "slow", "arguments": ARGS})
        job = started.structured_content
        result = await client.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 10})
    assert result.is_error and "cannot be asked" in result.content[0].text
    assert bench.finished == []
