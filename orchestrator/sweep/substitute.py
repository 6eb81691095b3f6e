"""Put trial parameters into commands: ``{{name}}`` placeholders and ``ORCH_PARAM_<NAME>`` env.

A value always reaches the program as literal text, never as shell syntax:

- In a shell string each value is quoted for the spot it lands in: unquoted (``shlex.quote``),
  inside double quotes (``\\``, ``"``, ``$`` and backquote escaped) or inside single quotes
  (``'`` closed, escaped and reopened). So ``--lr {{lr}}``, ``"--lr={{lr}}"`` and
  ``'--lr={{lr}}'`` all pass a value like ``$(id); rm -rf ~`` through unchanged.
- In a list command (run without a shell) each placeholder stays inside its one argv item.

Values become text as in ``format_value``: strings as they are, bools ``true``/``false``, floats
with repr precision, None as the empty string, lists and dicts as JSON.
"""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator.errors import SpecError, Where

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*\}\}")
ENV_PREFIX = "ORCH_PARAM_"
Command = str | Sequence[str]


def format_value(value: Any) -> str:
    """A parameter value as command-line / environment text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, sort_keys=True)


def placeholders(command: Command) -> set[str]:
    """Names of the ``{{name}}`` placeholders (spaces inside the braces allowed)."""
    texts = [command] if isinstance(command, str) else list(command)
    return {match.group(1) for text in texts for match in PLACEHOLDER.finditer(text)}


def check(commands: Iterable[Command], param_names: Iterable[str], *, key_path: str = "") -> list[str]:
    """SpecError if a placeholder has no parameter; else warnings for parameters no command uses."""
    names = set(param_names)
    used: set[str] = set()
    for command in commands:
        used |= placeholders(command)
    missing = sorted(used - names)
    if missing:
        raise _missing_error(missing, names, key_path)
    shipyard = sorted(name for name in names - used if _shipyard_style(commands, name))
    if shipyard:
        written = ", ".join("{" + ("" if name == "0" else name) + "}" for name in shipyard)
        wanted = ", ".join("{{" + name + "}}" for name in shipyard)
        raise SpecError(f"the command uses Batch Shipyard's placeholders {written}", where=Where(key_path=key_path or None),
                        hint=f"orch writes them {wanted}: double the braces (positional ones are {{{{0}}}}, {{{{1}}}})")
    return [f"parameter {name!r} is not used by any {{{{placeholder}}}} (it is still in ${env_name(name)})"
            for name in sorted(names - used)]


def _shipyard_style(commands: Iterable[Command], name: str) -> bool:
    """Whether a command writes parameter ``name`` as Shipyard's ``{name}`` (``{}`` for the first
    positional one) rather than orch's ``{{name}}``."""
    pattern = re.compile(r"(?<!\{)\{" + ("" if name == "0" else re.escape(name)) + r"\}(?!\})")
    if name == "0":
        pattern = re.compile(r"(?<!\{)\{0?\}(?!\})")
    texts = [text for command in commands for text in ([command] if isinstance(command, str) else command)]
    return any(pattern.search(text) for text in texts)


def render(command: Command, params: Mapping[str, Any], *, key_path: str = "") -> str | list[str]:
    """``command`` with placeholders replaced (see the module docstring for the quoting rules)."""
    missing = sorted(placeholders(command) - set(params))
    if missing:
        raise _missing_error(missing, set(params), key_path)
    if isinstance(command, str):
        return _render_shell(command, params)
    return [PLACEHOLDER.sub(lambda match: format_value(params[match.group(1)]), item) for item in command]


def _render_shell(command: str, params: Mapping[str, Any]) -> str:
    pieces: list[str] = []
    state = _QuoteState()
    position = 0
    for match in PLACEHOLDER.finditer(command):
        state.advance(command[position:match.start()])
        text = format_value(params[match.group(1)])
        pieces.append(command[position:match.start()])
        pieces.append(_quote_for(state.quote, text))
        position = match.end()
    pieces.append(command[position:])
    return "".join(pieces)


class _QuoteState:
    """Tracks whether the shell text read so far leaves us unquoted, in '...' or in "..."."""

    def __init__(self) -> None:
        self.quote = ""
        self._escaped = False

    def advance(self, text: str) -> None:
        for char in text:
            if self._escaped:
                self._escaped = False
            elif char == "\\" and self.quote != "'":
                self._escaped = True
            elif self.quote == "" and char in "'\"":
                self.quote = char
            elif char == self.quote:
                self.quote = ""


def _quote_for(quote: str, text: str) -> str:
    if quote == "'":
        return text.replace("'", "'\\''")
    if quote == '"':
        return re.sub(r'([\\"$`])', r"\\\1", text)
    return shlex.quote(text)


def env_name(name: str) -> str:
    """``ORCH_PARAM_`` + the name upper-cased, each non-alphanumeric character as ``_``."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def param_env(params: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables carrying the parameters (values as ``format_value``)."""
    env: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name, value in params.items():
        key = env_name(name)
        if key in env:
            raise SpecError(f"parameters {origin[key]!r} and {name!r} both become {key}", hint="rename one of them")
        env[key] = format_value(value)
        origin[key] = name
    return env


def _missing_error(missing: list[str], available: set[str], key_path: str) -> SpecError:
    shown = ", ".join("{{" + name + "}}" for name in missing)
    known = ", ".join(sorted(available)) if available else "none"
    return SpecError(f"placeholder {shown} has no parameter", where=Where(key_path=key_path or None),
                     hint=f"parameters of this task: {known}; positional factories use {{{{0}}}}, {{{{1}}}} or names")
