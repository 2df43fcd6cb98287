"""The tools an agent or an agent thread may enable (the Cerca tool list)."""

from config.errors import Invalid

AVAILABLE_TOOLS = (
    "get_time", "sub_thread", "wait", "tool.call", "tool.discover", "artifact.read",
    "agent.threads.list", "agent.threads.get", "agent.approvals.cancel", "agent.approvals.grant_thread",
    "agent.approvals.grant_agent", "agent.create", "agent.approvals.update", "tool.connect",
    "sandbox.exec", "sandbox.read", "sandbox.write_file", "sandbox.read_file", "sandbox.spawn",
    "sandbox.stdin", "sandbox.session_read", "sandbox.kill", "sandbox.list_sessions", "sandbox.sync_artifact",
    "memory.read", "memory.list", "memory.search", "memory.write", "memory.delete", "db.query",
    "web.search", "web.fetch", "agent.schedule.list", "agent.schedule.create", "agent.schedule.update",
    "agent.schedule.delete", "agent.schedule.trigger",
)


def validate_tools(tools, *, field: str = "tools") -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise Invalid(f"{field} must be a list of tool names.", errors={field: ["A list of strings."]})
    unknown = sorted(set(tools) - set(AVAILABLE_TOOLS))
    if unknown:
        raise Invalid(f"Unknown tool(s): {', '.join(unknown)}.", errors={field: [f"Unknown tool '{t}'." for t in unknown]})
    return list(dict.fromkeys(tools))
