"""Messages in LangGraph's format (`{type: human|ai|tool|system, content, id}`), the
format of the `messages` channel a chat graph keeps in its checkpoints.

A stored message (`Message`: role + content blocks) maps to one: `user` -> `human`,
`assistant` -> `ai`; a content of one text block becomes a plain string, anything
else stays a list of blocks. The message's id is the stored message's id, so a
message in the channel and its row are the same message.
"""

ROLE_TO_TYPE = {"user": "human", "assistant": "ai", "tool": "tool", "system": "system"}
TYPE_TO_ROLE = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant", "tool": "tool",
                "system": "system"}


def make_message(*, type: str, content, id: str, name: str | None = None) -> dict:
    message = {"type": type, "content": content, "id": id, "name": name, "additional_kwargs": {},
               "response_metadata": {}}
    if type == "ai":
        message.update(tool_calls=[], invalid_tool_calls=[], usage_metadata=None)
    return message


def blocks_to_content(blocks):
    """Content blocks as LangGraph content: the text of a lone text block, else the blocks."""
    if isinstance(blocks, list) and len(blocks) == 1 and isinstance(blocks[0], dict) and blocks[0].get("type") == "text":
        return blocks[0].get("text", "")
    return blocks


def content_to_blocks(content) -> list[dict]:
    """LangGraph content (a string or a list of blocks/strings) as content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b if isinstance(b, dict) else {"type": "text", "text": str(b)} for b in content]
    return [{"type": "text", "text": "" if content is None else str(content)}]


def from_stored(message) -> dict:
    """A stored `Message` as a LangGraph message."""
    return make_message(type=ROLE_TO_TYPE.get(message.role, message.role),
                             content=blocks_to_content(message.content), id=str(message.id))


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content or [])


def normalise(message, *, new_id) -> dict:
    """A message as a client sends it (LangGraph's `{type, content}`, OpenAI-style
    `{role, content}`, or a bare string) in the full format; `new_id()` gives an id
    to a message without one."""
    if isinstance(message, str):
        message = {"type": "human", "content": message}
    if not isinstance(message, dict):
        raise ValueError("A message is an object with a type (or role) and a content.")
    kind = message.get("type") or message.get("role")
    kind = ROLE_TO_TYPE.get(TYPE_TO_ROLE.get(kind, ""), None)
    if kind is None:
        raise ValueError("A message needs a type: human, ai, tool or system.")
    full = make_message(type=kind, content=message.get("content", ""), id=str(message.get("id") or new_id()),
                             name=message.get("name"))
    for key, value in message.items():
        if key not in ("role", "type", "content", "id", "name"):
            full[key] = value
    return full


REMOVE_ALL = "__remove_all__"  # LangGraph's RemoveMessage id that clears the list


def add_messages(left: list, right: list) -> list:
    """LangGraph's `add_messages` reducer: append, a message with an id already
    present replaces it in place, a `{"type": "remove", "id"}` removes that one
    (`__remove_all__`: every message before it; an id not there is a ValueError)."""
    merged = list(left or [])
    index = {m.get("id"): i for i, m in enumerate(merged) if isinstance(m, dict)}
    for message in right:
        if message.get("type") == "remove":
            if message.get("id") == REMOVE_ALL:
                merged = []
            elif message.get("id") in index:
                merged = [m for m in merged if not (isinstance(m, dict) and m.get("id") == message["id"])]
            else:
                raise ValueError(f"No message with id '{message.get('id')}' to remove.")
            index = {m.get("id"): i for i, m in enumerate(merged) if isinstance(m, dict)}
            continue
        if message.get("id") in index:
            merged[index[message["id"]]] = message
        else:
            index[message.get("id")] = len(merged)
            merged.append(message)
    return merged
