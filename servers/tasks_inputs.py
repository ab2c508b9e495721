"""Questions an MCP task's tool asks its client (SEP-2663 `input_required`): the task has no
request to answer on, so a question waits in the task until the client polls it (`tasks/get` lists
it under `inputRequests`) and answers it (`tasks/update` with `inputResponses` under the same key).

Only what the creating request declared may be asked (sampling, elicitation, roots). Each question
is bounded: at most `MAX_OPEN_QUESTIONS` open per task, each waits at most `ANSWER_TIMEOUT` seconds
(the tool then gets an error, as a client that declines would give), and an answer must have the
shape of the result its request asks for.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
import mcp.types as mt
from mcp.client.session import ClientRequestContext
from pydantic import BaseModel, ValidationError

from workbench.core import CallContext

A = TypeVar("A", bound=BaseModel)
ANSWER_TIMEOUT = 600.0
MAX_OPEN_QUESTIONS = 16


@dataclass
class Question:
    request: mt.ElicitRequest | mt.CreateMessageRequest | mt.ListRootsRequest
    answer_type: type[BaseModel]
    answered: anyio.Event = field(default_factory=anyio.Event)
    answer: BaseModel | None = None


class Questions:
    """The open questions of one task, and the `CallContext` callbacks that ask them."""

    def __init__(self, kinds: frozenset[str], changed: Callable[[], None]) -> None:
        self.kinds = kinds
        """What the creating request declared: "sampling", "elicitation", "roots"."""
        self.open: dict[str, Question] = {}
        self._changed = changed

    def attach(self, ctx: CallContext) -> None:
        """Give the tool's context the ways to ask that its client declared."""
        if "sampling" in self.kinds:
            async def sampling(context: ClientRequestContext, params: mt.CreateMessageRequestParams,
                               ) -> mt.CreateMessageResult | mt.ErrorData:
                return await self._ask(mt.CreateMessageRequest(params=params), mt.CreateMessageResult)
            ctx.sampling = sampling
        if "elicitation" in self.kinds:
            async def elicitation(context: ClientRequestContext, params: mt.ElicitRequestParams,
                                  ) -> mt.ElicitResult | mt.ErrorData:
                return await self._ask(mt.ElicitRequest(params=params), mt.ElicitResult)
            ctx.elicitation = elicitation
        if "roots" in self.kinds:
            async def list_roots(context: ClientRequestContext) -> mt.ListRootsResult | mt.ErrorData:
                return await self._ask(mt.ListRootsRequest(), mt.ListRootsResult)
            ctx.list_roots = list_roots

    async def _ask(self, request: mt.ElicitRequest | mt.CreateMessageRequest | mt.ListRootsRequest,
                   answer_type: type[A]) -> A | mt.ErrorData:
        if len(self.open) >= MAX_OPEN_QUESTIONS:
            return mt.ErrorData(code=mt.INVALID_REQUEST, message=f"more than {MAX_OPEN_QUESTIONS} open questions")
        key = secrets.token_hex(8)
        question = self.open[key] = Question(request, answer_type)
        self._changed()
        try:
            with anyio.move_on_after(ANSWER_TIMEOUT):
                await question.answered.wait()
        finally:
            self.open.pop(key, None)
            self._changed()
        if question.answer is None:
            return mt.ErrorData(code=mt.INTERNAL_ERROR, message=f"no answer within {ANSWER_TIMEOUT:g} s")
        return cast(A, question.answer)  # validated as `answer_type` by `answer`

    def requests(self) -> dict[str, dict[str, Any]]:
        """The open questions as the wire's `inputRequests`."""
        return {key: q.request.model_dump(by_alias=True, mode="json", exclude_none=True)
                for key, q in self.open.items()}

    def answer(self, responses: Mapping[str, object]) -> None:
        """Answer the open questions named in `responses` (others stay open; unknown keys are ignored).
        Raises ValueError, answering none, when one has the wrong shape."""
        answers: dict[str, BaseModel] = {}
        for key, raw in responses.items():
            question = self.open.get(key)
            if question is None:
                continue
            try:
                answers[key] = question.answer_type.model_validate(raw)
            except ValidationError as e:
                raise ValueError(f"inputResponses[{key!r}] is not a {question.answer_type.__name__}: "
                                 f"{e.error_count()} problem(s)") from None
        for key, answer in answers.items():
            question = self.open.pop(key)  # at once: the next tasks/get must not list it
            question.answer = answer
            question.answered.set()
        if answers:
            self._changed()
