"""Messages kept as data: a `Text` stored as JSON and read back, so it is translated when shown.

Stored reasons (a bid's eligibility checks, why it was not awarded) keep the msgid and its
parameters rather than the English alone; rows written before they did hold plain English,
which reads back as it is.
"""

from __future__ import annotations

import json
from typing import Any

from bidhub.domain.text import Joined, Text

_STORED_PREFIXES = ('{"msgid":', '{"parts":')


def to_data(message: Any) -> Any:
    """A JSON-safe form of a `Text` or `Joined` (parameters included); anything else as it is."""
    if isinstance(message, Text):
        return {"msgid": message.msgid,
                "params": {name: to_data(value) for name, value in message.params.items()}}
    if isinstance(message, Joined):
        return {"parts": [to_data(part) for part in message.parts],
                "separator": message.separator}
    return message


def from_data(data: Any) -> Any:
    """The message `to_data` stored; plain values (old English strings) come back unchanged."""
    if isinstance(data, dict) and isinstance(data.get("msgid"), str):
        return Text(data["msgid"], {name: from_data(value)
                                    for name, value in (data.get("params") or {}).items()})
    if isinstance(data, dict) and isinstance(data.get("parts"), list):
        return Joined([from_data(part) for part in data["parts"]],
                      str(data.get("separator", "; ")))
    return data


def dumps(message: Text | Joined | str) -> str:
    """A message as one string for a text column (plain text stays as it is)."""
    if isinstance(message, Text | Joined):
        return json.dumps(to_data(message), ensure_ascii=False, sort_keys=True)
    return message


def loads(value: str) -> Text | Joined | str:
    """The message `dumps` wrote, or `value` itself when it is plain text."""
    if not value.startswith(_STORED_PREFIXES):
        return value
    try:
        return from_data(json.loads(value))
    except ValueError:
        return value
