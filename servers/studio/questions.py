"""Questions a tool call asks the person at the console (MCP form elicitation, e.g. the policy's
`require_approval`), answered through the browser.

A call from Studio carries an elicitation callback that puts the question on the call's own event
stream (a `question` event) and waits for the answer the page posts to `/ui/api/questions/<id>`.
Only the session that made the call can answer (another one's id is unknown, as if it did not
exist); a question lives only while its call waits for it (the caller bounds the wait, as
`ask_approval` does), and closing the stream cancels the call and the question with it. The
number of open questions is bounded, so a page cannot pile them up.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp.types as mt
from mcp.client.session import ClientRequestContext, ElicitationFnT
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from servers.studio.events import Emit
from servers.studio.web import api_error, read_json_object, session_of

MAX_OPEN = 64
"""Questions waiting for an answer, over all sessions."""
MAX_ANSWER_BYTES = 64 * 1024


@dataclass
class _Open:
    session: str
    answered: anyio.Event = field(default_factory=anyio.Event)
    answer: mt.ElicitResult | None = None


class Questions:
    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}

    def asker(self, session: str, emit: Emit) -> ElicitationFnT:
        """The elicitation callback of one call from `session`, asking over its stream `emit`."""

        async def ask(context: ClientRequestContext, params: mt.ElicitRequestParams) -> mt.ElicitResult | mt.ErrorData:
            if not isinstance(params, mt.ElicitRequestFormParams):
                return mt.ErrorData(code=mt.INVALID_REQUEST, message="Studio answers form questions only, not URLs")
            if len(self._open) >= MAX_OPEN:
                return mt.ErrorData(code=mt.INVALID_REQUEST, message="too many questions are open at the console")
            async with self._asking(session) as (question_id, question):
                await emit("question", {"id": question_id, "message": params.message,
                                        "schema": params.requested_schema})
                await question.answered.wait()
                assert question.answer is not None
                return question.answer

        return ask

    @asynccontextmanager
    async def _asking(self, session: str) -> AsyncIterator[tuple[str, _Open]]:
        question_id = secrets.token_urlsafe(16)
        self._open[question_id] = question = _Open(session)
        try:
            yield question_id, question
        finally:  # answered, timed out or cancelled: the id answers nothing any more
            del self._open[question_id]

    def answer(self, question_id: str, session: str, answer: mt.ElicitResult) -> bool:
        question = self._open.get(question_id)
        if question is None or question.session != session or question.answered.is_set():
            return False
        question.answer = answer
        question.answered.set()
        return True

    def routes(self) -> list[BaseRoute]:
        async def post_answer(request: Request) -> Response:
            body = await read_json_object(request, MAX_ANSWER_BYTES)
            if isinstance(body, Response):
                return body
            try:
                answer = mt.ElicitResult.model_validate(_answer_fields(body))
            except ValidationError as e:
                return api_error(400, "bad_answer", "the answer is {action: accept|decline|cancel, content: "
                                                    f"{{field: value}}}}: {e.errors()[0]['msg']}")
            if not self.answer(request.path_params["id"], session_of(request).id, answer):
                return api_error(404, "not_found", "no such question is waiting (answered already, or the call ended)")
            return Response(status_code=204)

        return [Route("/questions/{id}", post_answer, methods=["POST"])]


def _answer_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Only what an answer has: the action and, on accept, the form's content."""
    action = body.get("action")
    return {"action": action, "content": body.get("content") if action == "accept" else None}
