"""`CodeExecutorAgent`: runs the fenced ```python and ```bash blocks of the message it
receives in the sandbox — through any workbench that has the sandbox's run tools, so it
depends on the `Workbench` interface only — and answers with the output. No model."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from typing import Any

from workbench.agents.base import Runner, check_name, check_state
from workbench.agents.messages import Event, TextMessage, ToolCall, ToolCallEvent, ToolResultEvent
from workbench.agents.toolset import Toolset
from workbench.core import CallContext, Workbench

_BLOCK = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)
LANGUAGES = {"python": "python", "py": "python", "python3": "python", "bash": "bash", "sh": "bash", "shell": "bash"}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """`(language, code)` for each fenced block in a language we run, in order."""
    return [(LANGUAGES[lang.lower()], code) for lang, code in _BLOCK.findall(text) if lang.lower() in LANGUAGES]


class CodeExecutorAgent(Runner):
    """`CodeExecutorAgent("runner", box)`; with a composite workbench the prefixed names
    (`sandbox__run_python`) are found too. `tools` globs narrow what it may use."""

    def __init__(self, name: str, workbench: Workbench, *, description: str = "", python_tool: str = "run_python",
                 bash_tool: str = "run_bash", tools: list[str] | None = None) -> None:
        self.name = check_name(name)
        self.description = description or (
            "Runs the ```python and ```bash code blocks it is sent and reports the output.")
        self.workbench = workbench
        self.tool_names = {"python": python_tool, "bash": bash_tool}
        self.toolset = Toolset(workbench, tools)
        self._init: dict[str, Any] = dict(description=description, python_tool=python_tool, bash_tool=bash_tool,
                                          tools=tools)
        self._calls = 0

    def clone(self) -> CodeExecutorAgent:
        twin = CodeExecutorAgent(self.name, self.workbench, **self._init)
        twin.toolset = self.toolset
        return twin

    async def _resolve(self) -> tuple[dict[str, str], dict[str, str]]:
        """language → exposed tool name, and tool name → the parameter that takes the code."""
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in await self.toolset.openai_tools()}
        names: dict[str, str] = {}
        params: dict[str, str] = {}
        for language, wanted in self.tool_names.items():
            match = wanted if wanted in schemas else next((n for n in schemas if n.endswith("__" + wanted)), None)
            if match is None:
                continue
            props = schemas[match].get("properties", {})
            required = [p for p in schemas[match].get("required", []) if props.get(p, {}).get("type") == "string"]
            names[language] = match
            params[match] = "code" if "code" in props else (required[0] if required else "code")
        return names, params

    async def respond(self, messages: list[TextMessage], ctx: CallContext) -> AsyncGenerator[Event, None]:
        blocks: list[tuple[str, str]] = []
        for message in reversed(messages):  # the latest message that has code
            blocks = code_blocks(message.content)
            if blocks:
                break
        if not blocks:
            yield TextMessage(source=self.name,
                              content="No ```python or ```bash code blocks found: send code in fenced blocks.")
            return
        names, params = await self._resolve()
        outputs: list[str] = []
        for index, (language, code) in enumerate(blocks, 1):
            tool = names.get(language)
            if tool is None:
                outputs.append(f"[block {index}: {language}] cannot run: no {self.tool_names[language]!r} tool on the "
                               f"workbench (is the sandbox configured?)")
                continue
            self._calls += 1
            call = ToolCall(id=f"{self.name}_{self._calls}", name=tool, arguments=json.dumps({params[tool]: code}))
            yield ToolCallEvent(source=self.name, calls=[call])
            result = await self.toolset.call(call, ctx)  # blocks run in order: later ones may use earlier state
            yield ToolResultEvent(source=self.name, results=[result])
            outputs.append(result.content if len(blocks) == 1 else f"[block {index}: {language}]\n{result.content}")
        yield TextMessage(source=self.name, content="\n\n".join(outputs))

    async def save_state(self) -> dict[str, Any]:
        return {"type": "CodeExecutorAgent", "version": 1, "name": self.name, "calls": self._calls}

    async def load_state(self, state: dict[str, Any]) -> None:
        check_state(state, "CodeExecutorAgent", self.name)
        self._calls = int(state.get("calls", 0))

    async def reset(self) -> None:
        self._calls = 0
