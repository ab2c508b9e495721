import re

from hypothesis import given
from hypothesis import strategies as st

from workbench.naming import MAX_TOOL_NAME, disambiguate, qualified_name, safe_tool_name

VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@given(st.text(max_size=200))
def test_any_name_becomes_valid_and_stable(name: str) -> None:
    safe = safe_tool_name(name)
    assert VALID.match(safe), safe
    assert safe_tool_name(name) == safe


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_long_distinct_names_stay_distinct(a: str, b: str) -> None:
    long_a, long_b = "x" * 70 + a, "x" * 70 + b
    if long_a != long_b:
        assert safe_tool_name(long_a) != safe_tool_name(long_b)


def test_prefix_and_plain_names() -> None:
    assert qualified_name("github", "create_issue") == "github__create_issue"
    assert qualified_name(None, "echo") == "echo"
    assert qualified_name("my server", "get.thing") == "my_server__get_thing"
    assert len(qualified_name("p" * 40, "t" * 40)) == MAX_TOOL_NAME


def test_disambiguate_is_deterministic_and_free() -> None:
    taken = {"a__echo"}
    first = disambiguate("a__echo", taken, "b/echo")
    assert first != "a__echo" and first.startswith("a__echo_")
    assert disambiguate("a__echo", taken, "b/echo") == first
    assert disambiguate("free", taken, "x") == "free"


def test_disambiguated_names_are_the_same_in_another_process() -> None:
    # Saved agent state and configs name tools across restarts: the suffix must not depend on
    # the process (hash seed, pid, time), only on the tool's origin.
    import os
    import subprocess
    import sys

    code = "from workbench.naming import disambiguate; print(disambiguate('a__echo', {'a__echo'}, 'b/echo'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == disambiguate("a__echo", {"a__echo"}, "b/echo")
    assert disambiguate("a__echo", {"a__echo"}, "c/echo") != other.stdout.strip()  # the origin does decide
