"""The persistent Python worker: a notebook kernel in the sandbox, started by the supervisor.

It reads code from a control pipe (4-byte length + UTF-8), runs it in one namespace that
survives across runs, prints a trailing expression's value, and answers with the exit code
on a second pipe. stdout/stderr are the supervisor's pipes. Standard library only; never
imported on the host (its source is passed into the container in the environment).
"""
import _thread
import ast
import json
import linecache
import os
import struct
import sys
import traceback
import types

try:
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # under memory pressure the kernel kills user code, not the supervisor
except OSError:
    pass
ctl_in, ctl_out = os.fdopen(int(sys.argv[1]), "rb", 0), os.fdopen(int(sys.argv[2]), "wb", 0)
# The cells' namespace is a real `__main__` module, so classes and functions defined in a
# cell pickle (multiprocessing, caching libraries) — and this loop's own names stay out of it.
user_main = types.ModuleType("__main__")
sys.modules["__main__"] = user_main
namespace = user_main.__dict__
worker_pid = os.getpid()
cell = 0


def read_exact(n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = ctl_in.read(n - len(buf))
        if not chunk:
            raise SystemExit(0)
        buf += chunk
    return buf


def live_threads() -> list[str]:
    """Names of the threads the cells started that are still running: a run ends when its code
    returns, and threads it left behind keep running in this interpreter until `reset`."""
    if not _thread._count():  # threads started by any means, even without the threading module
        return []
    threading = sys.modules.get("threading")
    if threading is None:
        return ["(unnamed)"] * _thread._count()
    return [t.name for t in threading.enumerate() if t is not threading.main_thread()]


while True:
    code = read_exact(struct.unpack(">I", read_exact(4))[0]).decode("utf-8", "replace")
    try:  # children of earlier cells were killed by the supervisor's sweep: collect them
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    cell += 1
    name = f"<cell {cell}>"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)  # so tracebacks show the code
    exit_code = 0
    try:
        tree = ast.parse(code, name, "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, name, "exec"), namespace)
        if isinstance(last, ast.Expr):  # like a notebook: the value of a trailing expression is shown
            value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
            if value is not None:
                print(repr(value))
    except SystemExit as e:
        exit_code = int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException as e:
        exit_code = 1
        tb = e.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
            tb = tb.tb_next  # hide this loop's own frames
        traceback.print_exception(type(e), e, tb)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if os.getpid() != worker_pid:
        os._exit(exit_code)  # a child the code forked ran off the end: it must not answer for the worker
    reply = json.dumps({"exit_code": exit_code, "threads": live_threads()}).encode()
    ctl_out.write(struct.pack(">I", len(reply)) + reply)
