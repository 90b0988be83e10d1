"""YAML loading that remembers where every key came from, and interpolates ``${ENV}``.

Differences from ``yaml.safe_load``, each on purpose:

- every mapping key and sequence item gets a line number (``Located.lines``), so a
  validation error can name the line;
- a key repeated in one mapping is an error, not silently "last one wins";
- a YAML float is built as ``Decimal`` from its source text, so ``input: 2.50`` is exactly
  2.50 dollars (pydantic turns it into a float where a field wants a float);
- ``${VAR}`` and ``${VAR:-default}`` inside strings are replaced from the environment; an
  unset variable becomes a :class:`MissingEnv` marker, which the config reports lazily for
  provider secrets and at once everywhere else. References are swapped for plain placeholder
  words before parsing (``{api_key: ${KEY}}`` is otherwise not valid YAML, since ``{`` opens a
  flow mapping) and the values put in after parsing, so a value's characters never change how
  the YAML parses.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from gateway.errors import ConfigError

__all__ = ["Located", "MissingEnv", "interpolate", "load_yaml_text"]

Path = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(r"__gateway_env_(\d+)__")


@dataclass(frozen=True, slots=True)
class MissingEnv:
    """A ``${VAR}`` reference whose variable is not set."""

    variable: str
    file: str
    line: int | None
    key: str

    def error(self) -> ConfigError:
        return ConfigError(
            f"environment variable {self.variable} is not set",
            file=self.file,
            line=self.line,
            key=self.key,
            fix=f"export {self.variable}=<value> before starting, or write the value in the file",
        )


@dataclass(slots=True)
class Located:
    """A parsed document plus the line (1-based) of every key path in it."""

    data: Any
    file: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of the longest prefix of ``path`` that the document has."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def interpolate(
    text: str, *, file: str, line: int | None, key: str, env: Mapping[str, str]
) -> str | MissingEnv:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in ``text``; a missing VAR gives MissingEnv."""
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or value == "":
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    result = _ENV_REF.sub(substitute, text)
    if missing:
        return MissingEnv(missing[0], file, line, key)
    return result


class _Builder:
    def __init__(self, file: str, env: Mapping[str, str], refs: list[str]) -> None:
        self.file = file
        self.refs = refs
        self.env = env
        self.lines: dict[Path, int] = {}
        self._scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        self._scalars.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalars.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | bool) or isinstance(key, bool):
                raise ConfigError(
                    f"keys must be plain names, got {type(key).__name__}",
                    file=self.file,
                    line=line,
                    key=dotted(path) or None,
                )
            key = str(key)
            child = (*path, key)
            if key in out:
                raise ConfigError(
                    f"'{key}' is defined twice (first on line {self.lines[child]})",
                    file=self.file,
                    line=line,
                    key=dotted(child),
                    fix="keep one definition; YAML would silently use only the last",
                )
            self.lines[child] = line
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        line = node.start_mark.line + 1
        if node.tag == "tag:yaml.org,2002:float":
            try:
                number = Decimal(node.value.replace("_", ""))
            except InvalidOperation:
                value = self._scalars.construct_object(node)
                return value  # .inf / .nan: let validation reject them by name
            return number
        value = self._scalars.construct_object(node)
        if isinstance(value, float) and not math.isfinite(value):
            return value
        if isinstance(value, str) and "__gateway_env_" in value:
            original = _PLACEHOLDER.sub(lambda m: self.refs[int(m.group(1))], value)
            return interpolate(original, file=self.file, line=line, key=dotted(path), env=self.env)
        return value


def load_yaml_text(text: str, *, file: str, env: Mapping[str, str] | None = None) -> Located:
    """Parse YAML ``text`` into plain data with line numbers; errors become ConfigError."""
    environment = os.environ if env is None else env
    refs: list[str] = []

    def to_placeholder(match: re.Match[str]) -> str:
        refs.append(match.group(0))
        return f"__gateway_env_{len(refs) - 1}__"

    text = _ENV_REF.sub(to_placeholder, text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if exc.context_mark is not None and exc.context_mark.line + 1 != line:
            problem += f" (in the part that starts on line {exc.context_mark.line + 1})"
        raise ConfigError(
            f"this is not valid YAML: {problem}",
            file=file,
            line=line,
            fix="check indentation, colons and quoting around that line",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"this is not valid YAML: {exc}", file=file) from None
    if node is None:
        return Located({}, file)
    builder = _Builder(file, environment, refs)
    data = builder.build(node, ())
    return Located(data, file, builder.lines)
