"""MCP tasks (`servers.tasks`, the `io.modelcontextprotocol/tasks` extension) through real HTTP:
`serve.background` tools become tasks for 2026-07-28 requests that declare the extension, run as
background jobs; `tasks/get` and `tasks/cancel` reach only the creator's tasks; a task's tool asks
its client through the task (`input_required`, answered by `tasks/update`); caps, id bounds, answer
shapes, timeouts and the extension gate hold; the call lane leaves task calls to the SDK path;
2025-era clients keep `jobs__*`. The SDK `Client` has no tasks, so the tasks wire is spoken with raw POSTs carrying the
2026-07-28 `_meta` envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp.types as mt
import pytest
from mcp.shared.exceptions import MCPError
from serve_toolkit import ServeBench
from serving import Served, http_client, serving
from tasks_wire import TAKES_TASKS, Wire

import servers.jobs
import servers.tasks_inputs
from servers import SESSION_HEADER, ServeSettings
from servers.call_lane import ToolCallLane
from servers.tasks import TASKS_EXTENSION
from workbench.core import CallContext, ToolResult

pytestmark = pytest.mark.anyio

ALICE_TOKEN, BOB_TOKEN = "alice-" + "a" * 26, "bob-" + "b" * 28
TASK_KEYS = {"resultType", "taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"}


class Bench(ServeBench):
    """ServeBench plus `broken`, whose source answers with a JSON-RPC error, as an upstream would."""

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        ctx: CallContext | None = None) -> ToolResult:
        if name == "broken":
            raise MCPError(mt.INTERNAL_ERROR, "the upstream fell over", {"where": "upstream"})
        return await super().call_tool(name, arguments, ctx)

    async def list_tools(self) -> list[mt.Tool]:
        return [*await super().list_tools(), mt.Tool(name="broken", input_schema={"type": "object"})]


def settings(**extra: Any) -> ServeSettings:
    fields: dict[str, Any] = {"background": ["slow", "fail", "broken", "add", "echo", "confirm"],
                              "tasks_required": ["echo"],
                              "tokens": {"alice": ALICE_TOKEN, "bob": BOB_TOKEN}, **extra}
    return ServeSettings(transport="http", **fields)


@asynccontextmanager
async def wire(served: Served, token: str = ALICE_TOKEN, **headers: str) -> AsyncIterator[Wire]:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {token}", **headers},
                                  timeout=httpx2.Timeout(30)) as http:
        yield Wire(http, served.url)


async def until(condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.02)


async def test_a_background_tool_is_a_task_for_a_client_that_takes_tasks() -> None:
    async with serving(Bench(), settings()) as served, wire(served) as alice:
        discovered = await alice.result("server/discover", {})
        assert discovered["capabilities"]["extensions"] == {TASKS_EXTENSION: {}}
        assert "tasks" not in discovered["capabilities"]  # not the 2025-11-25 slot

        created = await alice.create("slow", {"seconds": 0.3, "tag": "t"})
        assert set(created) - {"_meta", "statusMessage"} == TASK_KEYS and created["status"] == "working"
        assert type(created["ttlMs"]) is int and type(created["pollIntervalMs"]) is int and created["ttlMs"] > 0
        working = await alice.result("tasks/get", {"taskId": created["taskId"]})  # at once: durably created
        assert working["status"] == "working" and "result" not in working and "error" not in working
        done = await alice.settled(created["taskId"])
        assert done["status"] == "completed" and done["resultType"] == "complete"
        assert done["result"]["content"] == [{"type": "text", "text": "slept 0.3"}] and "requestState" not in done

        # The same tool from a request that does not declare the extension runs synchronously.
        plain = await alice.result("tools/call", {"name": "slow", "arguments": {"seconds": 0}}, capabilities={})
        assert plain["resultType"] == "complete" and plain["content"][0]["text"].startswith("slept 0") and "taskId" not in plain
        # A tool that is not a background one is never a task.
        sync = await alice.result("tools/call", {"name": "media", "arguments": {}})
        assert sync["resultType"] == "complete" and "taskId" not in sync


async def test_tool_errors_complete_and_protocol_errors_fail() -> None:
    async with serving(Bench(), settings()) as served, wire(served) as alice:
        failed_tool = await alice.settled((await alice.create("fail", {"reason": "nope"}))["taskId"])
        assert failed_tool["status"] == "completed" and failed_tool["result"]["isError"] is True
        assert "nope" in failed_tool["result"]["content"][0]["text"]

        broken = await alice.settled((await alice.create("broken", {}))["taskId"])
        assert broken["status"] == "failed" and "result" not in broken
        assert broken["error"] == {"code": mt.INTERNAL_ERROR, "message": "the upstream fell over",
                                   "data": {"where": "upstream"}}


async def test_cancel_stops_the_work_and_is_idempotent() -> None:
    bench = Bench()
    async with serving(bench, settings()) as served, wire(served) as alice:
        task_id = (await alice.create("slow", {"seconds": 30, "tag": "long"}))["taskId"]
        await until(lambda: "long" in bench.running)
        ack = await alice.result("tasks/cancel", {"taskId": task_id})
        assert set(ack) <= {"resultType", "_meta"} and ack["resultType"] == "complete"  # an empty ack
        assert "long" in bench.cancelled and "long" not in bench.running  # the tool's work really stopped
        cancelled = await alice.result("tasks/get", {"taskId": task_id})
        assert cancelled["status"] == "cancelled" and "result" not in cancelled
        again = await alice.result("tasks/cancel", {"taskId": task_id})  # a terminal task: the same ack
        assert set(again) <= {"resultType", "_meta"} and again["resultType"] == "complete"
        assert (await alice.result("tasks/update", {"taskId": task_id, "inputResponses": {}}))["resultType"] == "complete"


async def test_a_task_is_its_creators_alone() -> None:
    bench = Bench()
    async with serving(bench, settings()) as served, wire(served) as alice, wire(served, BOB_TOKEN) as bob:
        task_id = (await alice.create("slow", {"seconds": 30, "tag": "alices"}))["taskId"]
        await until(lambda: "alices" in bench.running)
        unknown_id = "f" * 32
        for method in ("tasks/get", "tasks/cancel", "tasks/update"):
            extra = {"inputResponses": {}} if method == "tasks/update" else {}
            snoop = await bob.error(method, {"taskId": task_id, **extra})
            unknown = await bob.error(method, {"taskId": unknown_id, **extra})
            # No existence oracle: Bob's answer for Alice's task is the one for an id nobody has.
            assert snoop[0] == unknown[0] == 400 and snoop[1]["code"] == unknown[1]["code"] == mt.INVALID_PARAMS
            assert snoop[1]["message"].replace(task_id, "ID") == unknown[1]["message"].replace(unknown_id, "ID")
        assert "alices" in bench.running and "alices" not in bench.cancelled
        assert (await alice.result("tasks/get", {"taskId": task_id}))["status"] == "working"
        assert len(task_id) == 32 and int(task_id, 16) >= 0  # 128 random bits
        await alice.result("tasks/cancel", {"taskId": task_id})
        # A jobs__start job is its session's, not a task: even its owner's tasks/get does not know it.
        job = await alice.result("tools/call", {"name": "jobs__start", "arguments": {"tool": "add",
                                                                                     "arguments": {"a": 1, "b": 2}}})
        status, error = await alice.error("tasks/get", {"taskId": job["structuredContent"]["job_id"]})
        assert (status, error["code"]) == (400, mt.INVALID_PARAMS)


async def test_the_tasks_methods_are_gated_and_bounded() -> None:
    async with serving(Bench(), settings()) as served, wire(served) as alice:
        task_id = (await alice.create("add", {"a": 1, "b": 2}))["taskId"]
        for method in ("tasks/get", "tasks/cancel", "tasks/update"):
            status, error = await alice.error(method, {"taskId": task_id, "inputResponses": {}}, capabilities={})
            assert (status, error["code"]) == (400, -32021) and TASKS_EXTENSION in error["message"]
            assert error["data"] == {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
        status, error = await alice.error("tasks/get", {"taskId": task_id}, name="someone-elses-task")
        assert (status, error["code"]) == (400, -32020)  # Mcp-Name must route to the body's task
        status, error = await alice.error("tasks/get", {"taskId": "a" * 65})
        assert (status, error["code"]) == (400, mt.INVALID_PARAMS) and "no task" not in error["message"]  # bounded
        status, error = await alice.error("tasks/update", {"taskId": task_id,
                                                           "inputResponses": {str(i): {} for i in range(65)}})
        assert (status, error["code"]) == (400, mt.INVALID_PARAMS)
        for removed in ("tasks/result", "tasks/list"):  # not in this version of the extension
            status, error = await alice.error(removed, {"taskId": task_id})
            assert (status, error["code"]) == (404, mt.METHOD_NOT_FOUND)

        # A tool that runs only as a task, called without the extension: refused, naming it.
        status, error = await alice.error("tools/call", {"name": "echo", "arguments": {"text": "x"}}, capabilities={})
        assert (status, error["code"]) == (400, -32021)
        assert error["data"] == {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}


async def test_per_session_and_per_identity_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving(Bench(), settings(max_concurrent_calls_per_client=2)) as served, wire(served) as alice:
        first = [await alice.create("slow", {"seconds": 30, "tag": f"a{i}"}) for i in range(2)]
        refused = await alice.result("tools/call", {"name": "slow", "arguments": {"seconds": 30}})
        assert refused["isError"] is True and "already runs 2 jobs" in refused["content"][0]["text"]
        # More sessions (a stateless client mints them with a header) stop at the identity's cap: 4 × 2.
        for session in range(3):
            async with wire(served, **{SESSION_HEADER: f"s{session}"}) as more:
                for i in range(2):
                    await more.create("slow", {"seconds": 30, "tag": f"s{session}-{i}"})
        async with wire(served, **{SESSION_HEADER: "s9"}) as last:
            over = await last.result("tools/call", {"name": "slow", "arguments": {"seconds": 30}})
        assert over["isError"] is True and "this identity already runs 8 jobs" in over["content"][0]["text"]
        for task in first:
            await alice.result("tasks/cancel", {"taskId": task["taskId"]})

        # Finished tasks kept per identity are capped too: past it the oldest are forgotten.
        monkeypatch.setattr(servers.jobs, "MAX_KEPT_PER_IDENTITY", 3)
        ids = [(await alice.create("add", {"a": i, "b": 0}))["taskId"] for i in range(5)]
        await alice.settled(ids[-1])
        status, error = await alice.error("tasks/get", {"taskId": ids[0]})
        assert (status, error["code"]) == (400, mt.INVALID_PARAMS)
        assert (await alice.settled(ids[-1]))["status"] == "completed"


async def test_a_task_outlives_the_stateless_session_that_carried_it() -> None:
    bench = Bench()
    async with serving(bench, settings()) as served, wire(served, **{SESSION_HEADER: "brief"}) as alice:
        task_id = (await alice.create("slow", {"seconds": 30, "tag": "kept"}))["taskId"]
        job = served.server.jobs.manager.jobs[task_id]
        await served.server.sessions.close(job.session_id)  # what idling out does to a stateless session
        assert "kept" in bench.running and (await alice.result("tasks/get", {"taskId": task_id}))["status"] == "working"
        await alice.result("tasks/cancel", {"taskId": task_id})


async def test_the_call_lane_leaves_task_calls_to_the_sdk_path() -> None:
    async with serving(Bench(), settings()) as served, wire(served) as alice:
        lane = served.server.lane
        assert isinstance(lane, ToolCallLane)
        before = lane.answered
        plain = await alice.result("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}}, capabilities={})
        assert plain["structuredContent"] == {"total": 2}
        assert lane.answered == before + 1  # an ordinary call: the lane's
        created = await alice.create("add", {"a": 1, "b": 1})  # no sampling/elicitation/roots, so lane-shaped
        status, error = await alice.error("tools/call", {"name": "echo", "arguments": {"text": "x"}}, capabilities={})
        assert lane.answered == before + 1 and created["taskId"] and error["code"] == -32021


async def test_2025_clients_keep_jobs_and_are_not_offered_tasks() -> None:
    async with serving(Bench(), settings(tokens={})) as served, http_client(served.url, mode="legacy") as client:
        assert TASKS_EXTENSION not in (client.server_capabilities.extensions or {})
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"jobs__start", "jobs__status", "jobs__result", "jobs__cancel"} <= tools
        job = (await client.call_tool("jobs__start", {"tool": "add", "arguments": {"a": 2, "b": 3}})).structured_content
        done = await client.call_tool("jobs__result", {"job_id": job["job_id"], "wait": 10})
        assert not done.is_error and done.structured_content == {"total": 5}
        # The 2025 wire has no tasks/* here: the SDK's own answer for an unknown method.
        with pytest.raises(MCPError) as refused:
            await client.session.send_request(mt.GetTaskRequest(params=mt.GetTaskRequestParams(task_id=job["job_id"])),
                                              mt.GetTaskResult)
        assert refused.value.error.code == mt.METHOD_NOT_FOUND


async def test_without_background_tools_there_are_no_tasks() -> None:
    async with serving(Bench(), ServeSettings(transport="http", tokens={"alice": ALICE_TOKEN})) as served, \
            wire(served) as alice:
        assert TASKS_EXTENSION not in ((await alice.result("server/discover", {}))["capabilities"].get("extensions") or {})
        status, error = await alice.error("tasks/get", {"taskId": "x"})
        assert (status, error["code"]) == (404, mt.METHOD_NOT_FOUND)
        plain = await alice.result("tools/call", {"name": "slow", "arguments": {"seconds": 0}})
        assert plain["resultType"] == "complete" and "taskId" not in plain


ASKS_AND_TAKES_TASKS: dict[str, Any] = {"elicitation": {}, **TAKES_TASKS}


async def test_a_task_asks_its_client_through_the_task() -> None:
    async with serving(Bench(), settings()) as served, wire(served) as alice:
        task_id = (await alice.create("confirm", {"action": "deploy"}, capabilities=ASKS_AND_TAKES_TASKS))["taskId"]
        with anyio.fail_after(10):
            while (task := await alice.result("tasks/get", {"taskId": task_id}))["status"] != "input_required":
                await anyio.sleep(0.05)
        [(key, question)] = task["inputRequests"].items()
        assert question["method"] == "elicitation/create" and question["params"]["message"] == "Go ahead with deploy?"
        status, error = await alice.error("tasks/update", {"taskId": task_id, "inputResponses": {key: {"action": 5}}})
        assert (status, error["code"]) == (400, mt.INVALID_PARAMS) and "ElicitResult" in error["message"]
        assert (await alice.result("tasks/get", {"taskId": task_id}))["status"] == "input_required"  # still asking
        answer = {key: {"action": "accept", "content": {"ok": True}}, "never-asked": {"action": "decline"}}
        ack = await alice.result("tasks/update", {"taskId": task_id, "inputResponses": answer})
        assert set(ack) <= {"resultType", "_meta"}
        done = await alice.settled(task_id)
        assert done["status"] == "completed" and done["result"]["content"][0]["text"] == "accept: {'ok': True}"

        # A request that did not declare elicitation gets a task that cannot ask.
        mute = (await alice.create("confirm", {"action": "x"}))["taskId"]
        assert (await alice.settled(mute))["result"]["content"][0]["text"] == "no elicitation channel"


async def test_an_unanswered_question_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.tasks_inputs, "ANSWER_TIMEOUT", 0.3)
    async with serving(Bench(), settings()) as served, wire(served) as alice:
        task_id = (await alice.create("confirm", {"action": "wait"}, capabilities=ASKS_AND_TAKES_TASKS))["taskId"]
        done = await alice.settled(task_id)
        assert done["result"]["content"][0]["text"].startswith("elicitation failed: no answer within")
