"""The audit log: one structured line per tool call, for whoever must answer "who ran what".

`Audited` wraps the served workbench and, for every `tools/call`, logs to the
`workbench.audit` logger: identity, session, tool, outcome (`ok`, `error`,
`refused:policy`, `refused:approval`, `refused:rate`, `cancelled`), duration in ms, and the
sizes in bytes of the arguments and of the result; for `jobs__start`, also the tool it runs in the
background and the job's id (the server log's "job finished" line has the run's outcome). Never
the argument values, the result, or anything from the request's headers: arguments carry secrets
and personal data, and a log is read by more people than the tool's caller. Lines reach the
server's JSON log on stderr and, with `[serve.audit] file`, a file of their own (JSON lines,
rotated by size, created 0600).

A refusal is told apart from a tool's own error by `_meta["workbench/refused"]`, which the
refusing wrapper (policy, approval, rate limit) sets with `refusal`: a client can read the
same marker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

from servers.jobs import START
from servers.logs import JsonLines
from workbench.core import CallContext, ToolResult, Workbench
from workbench.wrapper import WorkbenchWrapper

audit_logger = logging.getLogger("workbench.audit")
REFUSED = "workbench/refused"
"""`_meta` key of a refused call's result: why ("policy", "approval", "rate")."""
MAX_LOGGED_NAME = 200
"""Characters of a tool name logged: the name is the client's, and a request may be megabytes."""


def refusal(why: str, text: str, **meta: Any) -> ToolResult:
    """An `is_error` result for a call refused before its tool ran, marked with `why`."""
    result = ToolResult.error(text)
    result.meta = {REFUSED: why, **meta}
    return result


class AuditConfig(BaseModel):
    """`[serve.audit]`: the audit lines always reach the server log; `file` adds a file of their own."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Off only where another layer audits (a benchmark of the bare hop, say): calls go unrecorded."""
    file: str | None = None
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=4096)
    """Size at which the file is rotated (`audit.log` → `audit.log.1` …)."""
    backups: int = Field(default=10, ge=0)
    """Rotated files kept; older ones are deleted."""


_file_handlers: dict[Path, RotatingFileHandler] = {}


def audit_to_file(config: AuditConfig) -> None:
    """Send the audit lines to `config.file` too (once per file, for as long as the process runs)."""
    if config.file is None:
        return
    path = Path(config.file).expanduser().resolve()
    if path in _file_handlers:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # readable by the server's user only
    handler = RotatingFileHandler(path, maxBytes=config.max_bytes, backupCount=config.backups, encoding="utf-8")
    handler.setFormatter(JsonLines())
    audit_logger.addHandler(handler)
    audit_logger.setLevel(logging.INFO)
    _file_handlers[path] = handler


def _json_size(value: Any) -> int:
    # pydantic-core's encoder: several times faster than json.dumps on large arguments.
    return len(pydantic_core.to_json(value, fallback=str))


def _result_size(result: ToolResult) -> int:
    # The result's wire shape, without building (and validating) a CallToolResult just to measure it.
    wire: dict[str, Any] = {"content": result.content, "isError": result.is_error}
    if result.structured is not None:
        wire["structuredContent"] = result.structured
    if result.meta is not None:
        wire["_meta"] = result.meta
    return len(pydantic_core.to_json(wire, by_alias=True, exclude_none=True, fallback=str))


def _cut(name: str) -> str:
    return name if len(name) <= MAX_LOGGED_NAME else name[:MAX_LOGGED_NAME] + "…"


def _background_run(name: str, arguments: dict[str, Any] | None, result: ToolResult | None) -> dict[str, str]:
    """For `jobs__start`, which tool it started and the job's id: a tool name is no secret, and the
    id joins this line to the server's "job finished" line with the run's outcome."""
    if name != START:
        return {}
    run: dict[str, str] = {}
    tool = (arguments or {}).get("tool")
    if isinstance(tool, str):
        run["job_tool"] = _cut(tool)
    job = result.structured.get("job_id") if result is not None and isinstance(result.structured, dict) else None
    if isinstance(job, str):
        run["job"] = job
    return run


def _outcome(result: ToolResult | None) -> str:
    if result is None:
        return "cancelled"
    why = (result.meta or {}).get(REFUSED)
    if isinstance(why, str):
        return f"refused:{why}"
    return "error" if result.is_error else "ok"


class Audited(WorkbenchWrapper):
    """`inner`, with an audit line for every tool call."""

    def __init__(self, inner: Workbench, config: AuditConfig | None = None) -> None:
        super().__init__(inner)
        self.config = config or AuditConfig()
        if self.config.enabled:
            audit_to_file(self.config)

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        if not self.config.enabled:
            return await self.inner.call_tool(name, arguments, ctx)
        started = time.perf_counter()
        result: ToolResult | None = None
        outcome: str | None = None
        try:
            result = await self.inner.call_tool(name, arguments, ctx)
            return result
        except Exception:  # an unknown tool (a protocol error) or a wrapper's slip
            outcome = "error"
            raise
        finally:
            caller = ctx or CallContext()
            _log_line({
                "audit": True,
                "identity": caller.identity,
                "session": caller.session_id,
                "tool": _cut(name),
                "outcome": outcome or _outcome(result),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "argument_bytes": _json_size(arguments or {}),
                "result_bytes": None if result is None else _result_size(result),
                "traceparent": caller.trace_context.get("traceparent"),
                **_background_run(name, arguments, result),
            })


_TEMPLATE = vars(logging.LogRecord(audit_logger.name, logging.INFO, __file__, 0, "tool call", (), None, "call_tool"))
"""Every audit record's constant part (its source is always this module, its message "tool call")."""
_EPOCH = _TEMPLATE["created"] - _TEMPLATE["relativeCreated"] / 1000
"""When `logging` was loaded: what `relativeCreated` counts from."""


def _record(fields: dict[str, Any]) -> logging.LogRecord:
    """The record `makeRecord` would make, from a template: `LogRecord.__init__` looks up the process,
    the thread and the module name anew for every line (a third of an audit line's cost); only the time
    and the thread change between calls. With a custom record factory installed, it makes the record."""
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return audit_logger.makeRecord(audit_logger.name, logging.INFO, __file__, 0, "tool call", (), None,
                                       "call_tool", fields)
    record = logging.LogRecord.__new__(logging.LogRecord)
    now = time.time()
    vars(record).update(_TEMPLATE, **fields, created=now, msecs=int((now - int(now)) * 1000) + 0.0,
                        relativeCreated=(now - _EPOCH) * 1000, thread=threading.get_ident(),
                        threadName=threading.current_thread().name, process=os.getpid())
    return record


def _log_line(fields: dict[str, Any]) -> None:
    """`audit_logger.info("tool call", extra=fields)`, without `Logger.findCaller`'s walk up the stack
    and `LogRecord.__init__`'s lookups (`_record`)."""
    if audit_logger.isEnabledFor(logging.INFO):
        audit_logger.handle(_record(fields))
