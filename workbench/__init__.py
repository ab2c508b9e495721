"""mcp-workbench: everything is a tool on a workbench."""

from workbench.composite import CompositeWorkbench, Mount
from workbench.core import (
    CallContext,
    ContentBlock,
    Health,
    PromptNotFoundError,
    ResourceNotFoundError,
    Tool,
    ToolNotFoundError,
    ToolResult,
    ToolSpec,
    Workbench,
    WorkbenchError,
)
from workbench.static import FunctionTool, StaticWorkbench, tool

__all__ = [
    "CallContext",
    "CompositeWorkbench",
    "ContentBlock",
    "FunctionTool",
    "Health",
    "Mount",
    "PromptNotFoundError",
    "ResourceNotFoundError",
    "StaticWorkbench",
    "Tool",
    "ToolNotFoundError",
    "ToolResult",
    "ToolSpec",
    "Workbench",
    "WorkbenchError",
    "tool",
]
