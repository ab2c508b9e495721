"""The in-container supervisor: PID 1 of every sandbox container.

Started as `python3 -c` with this file's source (so any image with python3 works) and reached over
the container's attached stdin/stdout for its whole life: the host sends length-prefixed
JSON requests, the supervisor answers each with one length-prefixed JSON response. That
one long-lived stream is why a run costs well under a millisecond instead of the 50–60 ms
of a fresh `docker exec`.

It keeps one persistent Python worker (worker.py: a notebook, the namespace survives runs)
and starts bash per run. Every run gets its own process group; when it ends, times out or
is cancelled, every process it left behind is killed — as PID 1 the supervisor itself
cannot be killed from inside, so the sandbox always stays answerable. Standard library
only; this file is never imported on the host.
"""

from __future__ import annotations

import base64
import ctypes
import json
import math
import os
import select
import signal
import stat
import struct
import subprocess
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: PID 1 imports nothing more at run time (annotations stay strings)
    from collections.abc import Callable
    from typing import Any, Protocol, TypedDict

    Request = dict[str, Any]
    """One decoded JSON request from the host."""
    Reply = dict[str, Any]
    """One JSON response to the host (or the worker's answer)."""

    class Libc(Protocol):
        """The libc calls made, as ctypes makes them (no argtypes: ints go as C int, the result is a C int)."""

        def prctl(self, option: int, arg2: int, arg3: int, arg4: int, arg5: int, /) -> int: ...
        def capset(self, header: ctypes.Array[ctypes.c_uint32], data: ctypes.Array[ctypes.c_uint32], /) -> int: ...

    class Worker(TypedDict):
        proc: subprocess.Popen[bytes]
        ctl: int
        reply: int
        out: int
        err: int

WORKSPACE = os.environ.get("HOME", "/workspace")
OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
PIDS_FILES = ("/sys/fs/cgroup/pids.events", "/sys/fs/cgroup/pids/pids.events")

BOOT = "import os; exec(os.environ.pop(%r))"
"""The command line: the source travels in the environment, so `ps` stays readable."""

WORKER = os.environ.pop("WORKBENCH_WORKER")
"""The persistent Python worker's source (sandbox/worker.py), handed over by the host."""


PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 3, 4, 24, 38, 39
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
KEPT_CAPS = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID)
USER_UID, USER_GID = (int(n) for n in os.environ.pop("WORKBENCH_USER", "1000:1000").split(":"))
"""Who user code runs as. The supervisor itself is root in the container (with only KEPT_CAPS)."""
MAX_WORKER_REPLY = 4096
"""The worker's reply is a few bytes of JSON; code running in the worker can write to that pipe,
so anything longer is a forgery and the interpreter is replaced."""
MAX_LISTED_BYTES = 256 << 10
"""list_files stops (truncated) past this many bytes of entries' JSON: the host bounds every frame."""
MAX_ERROR_CHARS = 2000


def seal() -> bool:
    """Put the supervisor out of user code's reach; returns whether that holds.

    The supervisor's stdin/stdout are the host's channel. Were it the same uid as user code, that
    code could open /proc/1/fd/0 and /proc/1/fd/1 (steal requests, forge replies) or ptrace it;
    non-dumpable alone does not stop that under gVisor. So the supervisor runs as root and user
    code as USER_UID: /proc/1 and ptrace then need CAP_SYS_PTRACE, signals need CAP_KILL, and user
    code has no capability at all. Here the supervisor keeps only what it needs (switch its
    children's uid, kill their processes), empties the bounding set and sets no_new_privs (both
    inherited: no child can ever gain a capability or root, even from a setuid binary, whatever
    the container's own switches say), and becomes non-dumpable, for runc. The result is read
    back from the kernel, not assumed from the calls."""
    try:
        libc: Libc = ctypes.CDLL(None, use_errno=True)
        os.setgroups([])  # root's group 0 would follow the file operations done as the user
        for cap in range(64):  # past the kernel's last capability the call fails: harmless
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        data = (ctypes.c_uint32 * 6)(KEPT_CAPS, KEPT_CAPS, 0, 0, 0, 0)  # effective, permitted, inheritable x 2
        libc.capset(header, data)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        with open("/proc/self/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        status.setdefault("CapAmb", "0")  # gVisor has no ambient capabilities, and no line for them
        caps = {key: int(status.get(key, "-1"), 16) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
        no_new_privs = libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1
        return (os.getuid() == 0 != USER_UID and os.getgroups() == [] and no_new_privs
                and caps == {"CapInh": 0, "CapPrm": KEPT_CAPS, "CapEff": KEPT_CAPS, "CapBnd": 0, "CapAmb": 0}
                and libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)
    except (OSError, AttributeError, ValueError):
        return False


SEALED = seal()
LIBC: Libc = ctypes.CDLL(None)


class AsUser:
    """File operations as the user (files stay theirs; their modes are obeyed): the effective
    uid only, so the supervisor returns to root — and its capabilities — afterwards. Each euid
    change resets the dumpable flag to the host's fs.suid_dumpable: it is set back each time."""

    def __enter__(self) -> None:
        os.setegid(USER_GID)
        os.seteuid(USER_UID)
        LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)

    def __exit__(self, *exc: object) -> None:
        os.seteuid(0)
        os.setegid(0)
        LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def user_process(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A process of user code: USER_UID, no supplementary groups, its own process group."""
    return subprocess.Popen(args, user=USER_UID, group=USER_GID, extra_groups=[], start_new_session=True,
                            cwd=WORKSPACE, **kwargs)


def send(obj: Reply) -> None:
    """One response frame on stdout (only the main thread writes there)."""
    data = json.dumps(obj).encode()
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        view = view[os.write(1, view):]


def read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def cgroup_counter(paths: tuple[str, ...], name: str) -> int:
    """A cgroup event counter (cgroup v2 or v1 file, whichever exists): OOM kills, pids-limit hits."""
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == name:
                        return int(value)
        except OSError:
            continue
    return 0


def process_table() -> tuple[list[int], list[int]]:
    """(live pids, zombie pids) in this PID namespace, PID 1 excluded."""
    live: list[int] = []
    zombies: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == "1":
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        (zombies if state == "Z" else live).append(int(name))
    return live, zombies


def worker_answer(reply: bytes) -> Reply | None:
    """The worker's {"exit_code": int, "threads": [names]} — or None when it is not exactly that
    (code in the worker can write to the reply pipe: treat it as untrusted)."""
    try:
        answer = json.loads(reply[4:])
    except ValueError:
        return None
    if not isinstance(answer, dict) or set(answer) != {"exit_code", "threads"}:
        return None
    code, threads = answer["exit_code"], answer["threads"]
    if type(code) is not int or not isinstance(threads, list) or not all(isinstance(t, str) for t in threads):
        return None
    answer["threads"] = [printable(t[:64]) for t in threads[:20]]
    return answer


def printable(text: str) -> str:
    """`text` as valid Unicode: a file name that is not UTF-8 (surrogate-escaped by os.listdir)
    or a thread name with a lone surrogate would make the host's JSON to the client invalid."""
    try:
        raw = text.encode("utf-8", "surrogateescape")  # a name's original bytes
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def reap(zombies: list[int]) -> None:
    for pid in zombies:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not ours: its parent reaps it


class Capture:
    """One output stream of one run: the first `limit` bytes kept, the rest read and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data, self.total = limit, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")  # non-UTF-8 output never breaks a result


class Supervisor:
    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.current: Any = None  # id of the request in progress
        self.cancelled: set[Any] = set()  # ids the host gave up on (before or while they ran)
        self.wake_r, self.wake_w = os.pipe()

    # -- the persistent Python worker --------------------------------------------------
    def start_worker(self) -> Worker:
        ctl_to_r, ctl_to_w = os.pipe()
        ctl_from_r, ctl_from_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        proc = user_process(
            [sys.executable, "-u", "-c", BOOT % "WORKBENCH_WORKER", str(ctl_to_r), str(ctl_from_w)],
            env=dict(os.environ, WORKBENCH_WORKER=WORKER), stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w,
            pass_fds=(ctl_to_r, ctl_from_w),
        )
        for fd in (ctl_to_r, ctl_from_w, out_w, err_w):
            os.close(fd)
        os.set_blocking(ctl_to_w, False)  # written by pump, under the run's deadline
        self.worker = {"proc": proc, "ctl": ctl_to_w, "reply": ctl_from_r, "out": out_r, "err": err_r}
        return self.worker

    def worker_alive(self) -> bool:
        """False once the worker is dead, dying, or has SIGKILL pending (a `kill -9 -1` from a
        bash run lands asynchronously: without this, its effect would show up in the next run)."""
        if self.worker is None or self.worker["proc"].poll() is not None:
            return False
        try:
            with open(f"/proc/{self.worker['proc'].pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            return False
        pending = int(status.get("SigPnd", "0"), 16) | int(status.get("ShdPnd", "0"), 16)
        return status.get("State", "").split()[0] not in ("Z", "X") and not pending & (1 << (signal.SIGKILL - 1))

    def stop_worker(self) -> None:
        if self.worker is None:
            return
        w, self.worker = self.worker, None
        try:
            os.killpg(w["proc"].pid, signal.SIGKILL)
        except OSError:
            pass
        w["proc"].wait()
        for fd in (w["ctl"], w["reply"], w["out"], w["err"]):
            os.close(fd)

    def sweep(self) -> bool:
        """Kill every process but the supervisor and the idle worker. Returns False when a
        fork bomb outran the sweep and everything (the worker too) had to go."""
        keep: set[int] = {self.worker["proc"].pid} if self.worker else set()
        for _ in range(50):
            live, zombies = process_table()
            reap(zombies)
            victims = [pid for pid in live if pid not in keep]
            if not victims:
                return True
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.001)
        os.kill(-1, signal.SIGKILL)  # as PID 1: every other process in the container
        if self.worker:
            self.worker["proc"].wait()
            self.stop_worker()
        time.sleep(0.05)
        reap(process_table()[1])
        return False

    # -- one run ---------------------------------------------------------------------------
    def pump(self, fds: tuple[int, int], out: Capture, err: Capture, deadline: float, done_fd: int | None = None,
             proc: subprocess.Popen[bytes] | None = None, send: tuple[int, bytes] | None = None) -> tuple[str, bytes]:
        """Write `send` (fd, bytes) and read output until the run finishes (the worker replies on
        `done_fd`, or `proc` exits); returns (how it stopped, the worker's reply bytes). The write
        is under the deadline too: a worker that stops reading cannot block the supervisor."""
        open_fds = {fds[0]: out, fds[1]: err}
        exit_fd: int | None = None
        if proc is not None:
            try:  # readable when the process exits: no polling (gVisor may lack it)
                exit_fd = os.pidfd_open(proc.pid)
            except (AttributeError, OSError):
                pass
        try:
            return self._pump(open_fds, deadline, done_fd, proc, exit_fd, send)
        finally:
            if exit_fd is not None:
                os.close(exit_fd)

    def _pump(self, open_fds: dict[int, Capture], deadline: float, done_fd: int | None,
              proc: subprocess.Popen[bytes] | None, exit_fd: int | None,
              send: tuple[int, bytes] | None) -> tuple[str, bytes]:
        reply = b""
        to_fd, pending = (send[0], memoryview(send[1])) if send else (None, memoryview(b""))
        while True:
            if self.current in self.cancelled:  # also catches a cancel that came before the wake pipe was armed
                return "cancelled", reply
            wait = deadline - time.monotonic()
            if wait <= 0:
                return "timeout", reply
            watch = list(open_fds) + [self.wake_r] + [fd for fd in (done_fd, exit_fd) if fd is not None]
            if proc is not None and exit_fd is None:
                wait = min(wait, 0.002 if not open_fds else 0.05)  # no pidfd: poll for the exit
            ready, writable, _ = select.select(watch, [to_fd] if pending and to_fd is not None else [], [], wait)
            if writable and to_fd is not None:
                try:
                    pending = pending[os.write(to_fd, pending):]
                except BlockingIOError:
                    pass
                except OSError:  # the worker is gone: its reply pipe says so
                    pending = memoryview(b"")
            for fd in ready:
                if fd == exit_fd:
                    continue  # the exit is checked below
                if fd == self.wake_r:
                    os.read(self.wake_r, 64)
                    if self.current in self.cancelled:
                        return "cancelled", reply
                    continue
                chunk = os.read(fd, 65536)
                if fd == done_fd:
                    if not chunk:
                        return "died", reply
                    reply += chunk
                    if len(reply) >= 4:
                        size = struct.unpack(">I", reply[:4])[0]
                        if size > MAX_WORKER_REPLY or len(reply) > 4 + MAX_WORKER_REPLY:
                            return "forged", reply
                        if len(reply) >= 4 + size:
                            return ("forged" if pending else "done"), reply  # it answered code it never read
                elif chunk:
                    open_fds[fd].add(chunk)
                else:
                    del open_fds[fd]
            if proc is not None and proc.poll() is not None:
                return "done", reply

    def drain(self, fds: tuple[int, int], out: Capture, err: Capture) -> None:
        """Everything already written into the pipes (writes finished before the reply)."""
        for fd, cap in ((fds[0], out), (fds[1], err)):
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                cap.add(chunk)

    def run(self, req: Request) -> Reply:
        limit, timeout = req.get("limit"), req.get("timeout")
        if not isinstance(limit, int) or limit < 0:
            raise ValueError("limit must be a non-negative integer")
        if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout < 0:
            raise ValueError("timeout must be a finite number of seconds >= 0")
        if req.get("lang") not in ("python", "bash") or not isinstance(req.get("code"), str):
            raise ValueError("lang must be python or bash and code a string")
        try:
            return self._run(req, limit, timeout)
        except BaseException:
            self.sweep()  # whatever went wrong, nothing the run started outlives it
            raise

    def _run(self, req: Request, limit: int, timeout: float) -> Reply:
        out, err = Capture(limit), Capture(limit)
        started = time.monotonic()
        ooms, forks_refused = cgroup_counter(OOM_FILES, "oom_kill"), cgroup_counter(PIDS_FILES, "max")
        deadline = started + timeout
        exit_code: int | None = None
        notes: list[str] = []
        state = "done"
        if req["lang"] == "python":
            w = self.worker
            if w is None or not self.worker_alive():
                self.stop_worker()
                w = self.start_worker()
            code = req["code"].encode("utf-8", "surrogatepass")
            state, reply = self.pump((w["out"], w["err"]), out, err, deadline, done_fd=w["reply"],
                                     send=(w["ctl"], struct.pack(">I", len(code)) + code))
            answer = worker_answer(reply) if state == "done" else None
            if state == "done" and answer is None:
                state = "forged"
            if answer is not None:
                self.drain((w["out"], w["err"]), out, err)
                exit_code = answer["exit_code"]
                if answer["threads"]:
                    threads = ", ".join(answer["threads"][:5])
                    notes.append(f"{len(answer['threads'])} thread(s) this code started are still running in the "
                                 f"Python interpreter ({threads}): they keep running between runs and may print "
                                 "into later results; `reset` stops them")
            else:
                self.drain((w["out"], w["err"]), out, err)
                proc = w["proc"]
                self.stop_worker()
                exit_code = proc.returncode
                notes.append("the Python interpreter " + {"died": "exited", "forged": "answered out of protocol "
                             "(the code wrote to its control pipe)"}.get(state, "was stopped")
                             + "; its variables are lost and a fresh one starts on the next run")
                if state == "forged":
                    state, exit_code = "done", None
        else:
            proc = user_process(["bash", "-c", req["code"]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
            assert proc.stdout is not None and proc.stderr is not None  # stdout=PIPE, stderr=PIPE: never None
            fds = (proc.stdout.fileno(), proc.stderr.fileno())
            state, _ = self.pump(fds, out, err, deadline, proc=proc)
            if state != "done":
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            exit_code = proc.wait()
        if not self.sweep():
            notes.append("a runaway process tree forced a full restart; Python variables are lost")
        elif req["lang"] != "python" and self.worker is not None and not self.worker_alive():
            self.stop_worker()
            notes.append("this run killed the Python interpreter; its variables are lost")
        if req["lang"] != "python":  # the sweep closed every pipe writer: read what is left
            self.drain(fds, out, err)
            assert proc.stdout is not None and proc.stderr is not None  # bash's pipes, as above
            proc.stdout.close()
            proc.stderr.close()
        oom = cgroup_counter(OOM_FILES, "oom_kill") > ooms
        if oom:
            notes.append("the memory limit was hit: a process was killed by the kernel (OOM)")
        if cgroup_counter(PIDS_FILES, "max") > forks_refused:
            notes.append("the process limit (pids) was hit: some processes could not be started")
        if state == "timeout":
            notes.append(f"timed out after {timeout:g} s (the run's wall-clock limit); its processes were killed")
        if state == "cancelled":
            notes.append("cancelled; its processes were killed")
        return {
            "stdout": out.text(), "stderr": err.text(), "exit_code": exit_code,
            "timed_out": state == "timeout", "cancelled": state == "cancelled", "oom_killed": oom,
            "stdout_bytes": out.total, "stderr_bytes": err.total,
            "truncated": out.total > limit or err.total > limit,
            "duration": time.monotonic() - started, "notes": notes,
        }

    # -- files, without a shell ----------------------------------------------------------
    @staticmethod
    def resolve(path: str) -> str:
        return os.path.normpath(os.path.join(WORKSPACE, path))

    @staticmethod
    def open_regular(path: str, flags: int) -> int:
        """Open `path` only if it is a regular file. O_NONBLOCK: opening a FIFO never waits for a
        peer; the fstat then refuses it, like /dev/zero (endless) or a socket."""
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError(f"{path} is not a regular file (a device, FIFO, socket or directory)")
        os.set_blocking(fd, True)
        return fd

    def write_file(self, req: Request) -> Reply:
        path = self.resolve(req["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = self.open_regular(path, os.O_WRONLY | os.O_CREAT)
        with os.fdopen(fd, "wb") as f:
            f.truncate(0)
            f.write(base64.b64decode(req["data"]))
            return {"path": path, "size": f.tell()}

    def read_file(self, req: Request) -> Reply:
        path, limit = self.resolve(req["path"]), req["limit"]
        with os.fdopen(self.open_regular(path, os.O_RDONLY), "rb") as f:
            data = f.read(limit + 1)  # the size can change under us: never read past the limit
        if len(data) > limit:
            raise ValueError(f"{path} is more than the {limit}-byte transfer limit")
        return {"path": path, "data": base64.b64encode(data).decode()}

    def list_files(self, req: Request) -> Reply:
        root = self.resolve(req.get("path", "."))
        entries: list[dict[str, Any]] = []
        listed = 0
        for base, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(base, name)
                st = os.lstat(full)
                kind = "dir" if os.path.isdir(full) and not os.path.islink(full) else (
                    "link" if os.path.islink(full) else "file")
                entry = {"path": printable(os.path.relpath(full, root)), "type": kind, "size": st.st_size}
                entries.append(entry)
                listed += len(json.dumps(entry))  # what it costs in the reply frame, which the host bounds
                if len(entries) >= req.get("max_entries", 1000) or listed > MAX_LISTED_BYTES:
                    return {"path": root, "entries": entries, "truncated": True}
            if not req.get("recursive"):
                break
        return {"path": root, "entries": entries, "truncated": False}

    def reset(self, req: Request) -> Reply:
        self.stop_worker()
        self.sweep()
        if req.get("clear_files"):
            if os.listdir(WORKSPACE):  # find, not `rm` with every name: any number of entries fits
                rm = user_process(["find", WORKSPACE, "-mindepth", "1", "-delete"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    rm.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    rm.kill()
                    rm.wait()
                    raise RuntimeError("emptying the workspace took more than 60 s") from None
        self.start_worker()
        return {"ok": True}

    def ping(self, req: Request) -> Reply:
        return {"ok": True, "python": sys.version.split()[0], "uid": USER_UID, "sealed": SEALED}

    @staticmethod
    def as_user(op: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
        def run_as_user(req: Request) -> Reply:
            with AsUser():
                return op(req)
        return run_as_user

    def handle(self, req: Request) -> Reply:
        op: Any = req.get("op")  # whatever the host sent: an unknown one is an error reply
        handler = {"run": self.run, "write_file": self.as_user(self.write_file),
                   "read_file": self.as_user(self.read_file), "list_files": self.as_user(self.list_files),
                   "reset": self.reset, "ping": self.ping}.get(op)
        try:
            if handler is None:
                raise ValueError(f"unknown op {op!r}")
            if req.get("id") in self.cancelled:
                raise RuntimeError("cancelled before it started")
            self.current = req.get("id")
            return dict(handler(req), id=req.get("id"))
        except Exception as e:  # the message may quote a path: bounded, and valid Unicode
            return {"id": req.get("id"), "error": printable(f"{type(e).__name__}: {e}")[:MAX_ERROR_CHARS]}
        finally:
            self.current = None
            self.cancelled.discard(req.get("id"))


def main() -> None:
    for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM",
                 "SIGPROF", "SIGIO", "SIGPWR", "SIGXCPU", "SIGABRT", "SIGTRAP"):
        # Caught (not ignored: exec resets a caught signal, so user code still gets the defaults):
        # code in the sandbox cannot signal the supervisor away.
        signal.signal(getattr(signal, name), lambda signum, frame: None)
    sup = Supervisor()
    sup.start_worker()
    queue: list[Request] = []
    ready = threading.Condition()

    def reader() -> None:
        while True:
            head = read_exact(0, 4)
            body = head and read_exact(0, struct.unpack(">I", head)[0])
            if not body:
                os._exit(0)  # the host went away: the container ends with it
            req = json.loads(body)
            if req.get("op") == "cancel":
                sup.cancelled.add(req.get("target"))
                if sup.current == req.get("target"):
                    os.write(sup.wake_w, b"x")
                continue
            with ready:
                queue.append(req)
                ready.notify()

    threading.Thread(target=reader, daemon=True).start()
    while True:
        with ready:
            while not queue:
                ready.wait()
            req = queue.pop(0)
        send(sup.handle(req))


main()
