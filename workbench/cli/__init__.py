"""The application — the top floor: the `workbench` command, the root config composed from each
component's own section, the assembly that wires MCP servers, the sandbox, agents and the server
together (`build_workbench`), and `workbench doctor`.

It is the only package that imports `adapters/`, `sandbox/` and `servers/` together; nothing
below it imports it (the core and the agents depend on the core only).
"""

from workbench.cli.commands import app, main

__all__ = ["app", "main"]
