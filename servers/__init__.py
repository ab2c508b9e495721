"""Serving any `Workbench` out over MCP: stdio and streamable HTTP, both protocol eras."""

from servers.http import create_app
from servers.mcp_server import WorkbenchServer
from servers.serve import serve_workbench
from servers.settings import SESSION_HEADER, ServeError, ServeSettings

__all__ = ["SESSION_HEADER", "ServeError", "ServeSettings", "WorkbenchServer", "create_app", "serve_workbench"]
