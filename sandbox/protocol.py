"""What the host accepts from a container's supervisor: the shape of every reply, and how big it may be.

Code in the container is untrusted, and so is everything that comes out of it. The supervisor
is sealed from user code (see `supervisor.seal`), but the host does not rely on that alone:
each frame's size is checked against a bound derived from the configured limits *before* it is
buffered, and each reply must match its op's model exactly. A frame that fails either check is
a `SandboxProtocolError`, and the container is replaced.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.errors import SandboxProtocolError

Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FRAME_SLACK = 64 << 10
"""Room for a reply's fixed fields, notes and paths on top of its variable payload."""
MAX_JSON_EXPANSION = 6
"""json.dumps writes a byte that is not valid UTF-8 or a control byte as `\\uXXXX`: six bytes."""


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: int


class ErrorReply(_Reply):
    error: str


class RunReply(_Reply):
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    oom_killed: bool
    stdout_bytes: Count
    stderr_bytes: Count
    truncated: bool
    duration: Seconds
    notes: list[str]


class WriteFileReply(_Reply):
    path: str
    size: Count


class ReadFileReply(_Reply):
    path: str
    data: str
    """Base64."""


class FileEntryWire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    path: str
    type: Literal["file", "dir", "link"]
    size: Count


class ListFilesReply(_Reply):
    path: str
    entries: list[FileEntryWire]
    truncated: bool


class ResetReply(_Reply):
    ok: bool


class PingReply(_Reply):
    ok: bool
    python: str
    uid: int
    sealed: bool


REPLIES: dict[str, type[_Reply]] = {
    "run": RunReply, "write_file": WriteFileReply, "read_file": ReadFileReply,
    "list_files": ListFilesReply, "reset": ResetReply, "ping": PingReply,
}


def max_reply_bytes(op: str, output_limit: int, file_limit: int) -> int:
    """The largest reply frame `op` can honestly produce under these limits."""
    if op == "run":  # two captured streams of at most `output_limit` bytes each
        return 2 * MAX_JSON_EXPANSION * output_limit + FRAME_SLACK
    if op == "read_file":  # base64 of at most `file_limit` bytes
        return 4 * (file_limit // 3 + 1) + FRAME_SLACK
    if op == "list_files":  # the supervisor stops listing at 256 KiB of names
        return MAX_JSON_EXPANSION * (256 << 10) + 1000 * 200 + FRAME_SLACK
    return FRAME_SLACK


def decode_frame(body: bytes) -> dict[str, Any]:
    """A frame as a JSON object with a request id; anything else is a protocol error."""
    try:
        data = json.loads(body)
    except ValueError:
        raise SandboxProtocolError("a reply frame is not JSON") from None
    if not isinstance(data, dict) or type(data.get("id")) is not int:
        raise SandboxProtocolError("a reply frame is not an object with a request id")
    return data


def validate_reply(op: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` checked against `op`'s reply model (or the error reply): every field present, of its
    type, nothing more."""
    model = ErrorReply if "error" in data else REPLIES[op]
    try:
        return model.model_validate(data).model_dump()
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise SandboxProtocolError(f"a {op} reply does not match the protocol ({where}: {first['msg']})") from None
