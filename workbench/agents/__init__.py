"""Agents, teams, model clients and the actor runtime — all of them usable as tools.

    model = OpenAIChatClient("gpt-4o-mini")
    coder = AssistantAgent("coder", model, workbench=[tools, box], system_message="…")
    team = RoundRobinGroupChat([coder, reviewer], termination=MaxMessages(8) | TextMention("APPROVE"))
    result = await team.run("Compute the 30th Fibonacci number")
"""

from workbench.agents.assistant import AssistantAgent
from workbench.agents.base import Runner, StateError
from workbench.agents.build import build_agents, build_model
from workbench.agents.cache import CachedChatClient
from workbench.agents.code_executor import CodeExecutorAgent
from workbench.agents.console import run_in_console
from workbench.agents.messages import (
    ModelResponse,
    TaskResult,
    TextChunk,
    TextMessage,
    ToolCall,
    ToolCallEvent,
    ToolCallResult,
    ToolResultEvent,
    Usage,
)
from workbench.agents.models import (
    ChatClient,
    ModelAuthError,
    ModelError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelUnavailableError,
    OpenAIChatClient,
)
from workbench.agents.replay import ReplayChatClient
from workbench.agents.runtime import Actor, AgentId, AgentRuntime, FunctionActor, MessageContext, RunnerActor, TopicId
from workbench.agents.teams import GroupChat, RoundRobinGroupChat, SelectorGroupChat
from workbench.agents.telemetry import configure_tracing
from workbench.agents.termination import ExternalStop, MaxMessages, Termination, TextMention, Timeout, TokenBudget
from workbench.agents.tool import AgentTool

Agent = AssistantAgent | CodeExecutorAgent
Team = GroupChat

__all__ = [
    "Actor", "Agent", "AgentId", "AgentRuntime", "AgentTool", "AssistantAgent", "CachedChatClient", "ChatClient",
    "CodeExecutorAgent", "ExternalStop", "FunctionActor", "GroupChat", "MaxMessages", "MessageContext",
    "ModelAuthError", "ModelError", "ModelNotFoundError", "ModelRateLimitError", "ModelResponse",
    "ModelUnavailableError", "OpenAIChatClient", "ReplayChatClient", "RoundRobinGroupChat", "Runner", "RunnerActor",
    "SelectorGroupChat", "StateError", "TaskResult", "Team", "Termination", "TextChunk", "TextMention", "TextMessage",
    "Timeout", "TokenBudget", "ToolCall", "ToolCallEvent", "ToolCallResult", "ToolResultEvent", "TopicId", "Usage",
    "build_agents", "build_model", "configure_tracing", "run_in_console",
]
