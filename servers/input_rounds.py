"""Input rounds: questions to a client that has no channel to ask them on.

A 2026-07-28 client has no server→client requests. When something behind the gateway asks
the caller a question mid-call — a 2025 upstream pushing sampling, elicitation or roots, or
a 2026 upstream's `InputRequiredResult` round, both reach us as the call's callbacks — the
call keeps running in the background, parked on the question, and the client's `tools/call`
is answered with an `InputRequiredResult` carrying it. The client retries with the answers
and our `requestState`; the answers go to the parked call, and the retry waits for its
result or its next question. So neither side needs to know the other's era.

`requestState` is a random token, looked up only for the identity that got it, so one
client can neither resume nor answer another's call. Parked calls are bounded per identity
and each question waits `answer_timeout` seconds at most, then the upstream hears an error.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import mcp.types as mt
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from workbench.core import CallContext, ProgressCallback

R = TypeVar("R")
W = TypeVar("W", bound=mt.Result)
_KEYS = itertools.count(1)


@dataclass
class _Question:
    request: mt.InputRequest
    answer_type: type[Any]
    answered: anyio.Event = field(default_factory=anyio.Event)
    answer: Any = None
    sent: bool = False


class ParkedCall:
    """One call from a client without a back-channel, and the questions it is waiting on."""

    def __init__(self, identity: str, answer_timeout: float) -> None:
        self.identity = identity
        self.answer_timeout = answer_timeout
        self.questions: dict[str, _Question] = {}
        self.changed = anyio.Event()
        self.result: mt.Result | None = None
        self.error: Exception | None = None
        """What the call raised instead of a result (an unknown tool): raised to the round's request."""
        self.done = False
        self.finished_at = 0.0
        self.scope = anyio.CancelScope()
        self.progress: ProgressCallback | None = None
        """The current round's progress sink: each retry is a new request with its own stream."""

    def _poke(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def ask(self, key: str | None, request: mt.InputRequest, answer_type: type[R]) -> R | mt.ErrorData:
        """Ask the client; `key` is the upstream's own key for the question (a 2026 round's), kept
        so the client sees what the upstream asked, or None for a pushed request."""
        if key is None or key in self.questions:
            key = f"input-{next(_KEYS)}"
        question = self.questions[key] = _Question(request, answer_type)
        self._poke()
        try:
            with anyio.move_on_after(self.answer_timeout):
                await question.answered.wait()
        finally:
            self.questions.pop(key, None)
        answer = question.answer
        if isinstance(answer, answer_type):
            return answer
        return mt.ErrorData(code=mt.INVALID_REQUEST, message=(
            f"the client did not answer {request.method} within {self.answer_timeout:g} s"
            if answer is None else f"the client answered {request.method} with a {type(answer).__name__}"))

    def answer(self, responses: dict[str, Any]) -> None:
        for key, response in responses.items():
            question = self.questions.get(key)
            if question is not None and not question.answered.is_set():
                question.answer = response
                question.answered.set()

    def finish(self, result: mt.Result | None, error: Exception | None = None) -> None:
        self.result, self.error, self.done, self.finished_at = result, error, True, time.monotonic()
        self._poke()

    def attach(self, call: CallContext, capabilities: mt.ClientCapabilities | None) -> None:
        """Point `call`'s client-request callbacks (and progress) at this parked call — those the
        client declared: nothing is asked of it that it did not say it can answer."""

        async def sampling(context: ClientRequestContext, params: mt.CreateMessageRequestParams) -> Any:
            return await self.ask(_round_key(context), mt.CreateMessageRequest(params=params), mt.CreateMessageResult)

        async def elicitation(context: ClientRequestContext, params: mt.ElicitRequestParams) -> Any:
            return await self.ask(_round_key(context), mt.ElicitRequest(params=params), mt.ElicitResult)

        async def list_roots(context: ClientRequestContext) -> Any:
            return await self.ask(_round_key(context), mt.ListRootsRequest(), mt.ListRootsResult)

        async def progress(value: float, total: float | None, message: str | None) -> None:
            if self.progress is not None:
                try:
                    await self.progress(value, total, message)
                except Exception:  # the round's stream may have closed; progress is best effort
                    self.progress = None

        declared = capabilities or mt.ClientCapabilities()
        call.sampling = sampling if declared.sampling is not None else None
        call.elicitation = elicitation if declared.elicitation is not None else None
        call.list_roots = list_roots if declared.roots is not None else None
        if call.progress is not None:
            self.progress, call.progress = call.progress, progress


def _round_key(context: ClientRequestContext) -> str | None:
    """The SDK hands a 2026 round's key to the callback as the request id (a pushed 2025
    request's id is a number)."""
    return context.request_id if isinstance(context.request_id, str) else None


class InputRounds:
    def __init__(self, *, answer_timeout: float = 300.0, max_parked_per_identity: int = 32) -> None:
        self.answer_timeout = answer_timeout
        self.max_parked_per_identity = max_parked_per_identity
        self._parked: dict[str, ParkedCall] = {}
        self.task_group: anyio.abc.TaskGroup | None = None
        """Where parked calls run: the server's, for as long as it serves."""

    def park(self, call: CallContext, capabilities: mt.ClientCapabilities | None) -> ParkedCall:
        self._sweep()
        if sum(p.identity == call.identity for p in self._parked.values()) >= self.max_parked_per_identity:
            raise MCPError(mt.INVALID_REQUEST, (
                f"{self.max_parked_per_identity} of your calls are waiting for your input already; answer "
                f"them, or wait for them to expire ({self.answer_timeout:g} s)"))
        parked = ParkedCall(call.identity, self.answer_timeout)
        parked.attach(call, capabilities)
        return parked

    def _sweep(self) -> None:
        """Forget calls whose result nobody came back for."""
        now = time.monotonic()
        for token, parked in list(self._parked.items()):
            if parked.done and now - parked.finished_at > self.answer_timeout:
                del self._parked[token]

    async def start(self, parked: ParkedCall, run: Callable[[], Awaitable[W]]) -> W | mt.InputRequiredResult:
        """Run the request (a tool call, a prompt, a resource read) in the background; answer with
        its result, or with its first questions."""
        if self.task_group is None:
            raise MCPError(mt.INTERNAL_ERROR, "the server is not running")

        async def background() -> None:
            result: W | None = None
            try:
                with parked.scope:
                    result = await run()
            except Exception as e:  # raised to the client's request, not into the server's task group
                parked.finish(None, e)
                return
            parked.finish(result, None if result is not None else MCPError(
                mt.INTERNAL_ERROR, "the request was cancelled while waiting for the client's input"))

        self.task_group.start_soon(background)
        token = secrets.token_urlsafe(24)
        self._parked[token] = parked
        return await self._next_round(token, parked, first=True)  # type: ignore[return-value]

    async def resume(
        self, identity: str, token: str, responses: dict[str, Any] | None, progress: ProgressCallback | None
    ) -> mt.Result:
        """A retry carrying answers: its result (the type the first request's would have been),
        or the next questions."""
        parked = self._parked.get(token)
        if parked is None or parked.identity != identity:
            raise MCPError(mt.INVALID_PARAMS, "unknown or expired requestState: call the tool again from the start")
        parked.progress = progress
        parked.answer(responses or {})
        return await self._next_round(token, parked, first=False)

    async def _next_round(self, token: str, parked: ParkedCall, *, first: bool) -> mt.Result:
        asked_client = False
        try:
            while True:
                if parked.done:
                    self._parked.pop(token, None)
                    if parked.error is not None:
                        raise parked.error
                    assert parked.result is not None
                    return parked.result
                unsent = {k: q for k, q in parked.questions.items() if not q.answered.is_set()}
                if unsent:
                    for _ in range(3):  # questions asked together (one upstream round) go out together
                        await anyio.lowlevel.checkpoint()
                    unsent = {k: q for k, q in parked.questions.items() if not q.answered.is_set()}
                    asked_client = True
                    # Each round its own state: a client cannot replay an earlier round's.
                    self._parked.pop(token, None)
                    token = secrets.token_urlsafe(24)
                    self._parked[token] = parked
                    return mt.InputRequiredResult(input_requests={k: q.request for k, q in unsent.items()},
                                                  request_state=token)
                await parked.changed.wait()
        except anyio.get_cancelled_exc_class():
            if first and not asked_client:  # the client left before anything was asked of it: stop the call
                parked.scope.cancel()
                self._parked.pop(token, None)
            raise
