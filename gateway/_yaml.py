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
  the YAML parses;
- a file is refused (:class:`ConfigError`, with the line) past fixed limits, before it can take
  the process's time or memory: :data:`MAX_CONFIG_BYTES` of text, :data:`MAX_DEPTH` levels of
  nesting, :data:`MAX_ALIASES` aliases and :data:`MAX_VALUES` values once aliases are expanded
  (an alias that contains itself is refused too). ``yaml.safe_load`` would expand a few hundred
  bytes of nested aliases into gigabytes, and recurse once per level of nesting;
- only plain YAML types are read: a tag such as ``!!python/...``, ``!!set`` or ``!Ref`` is a
  ConfigError naming the line.
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

__all__ = [
    "MAX_ALIASES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "Located",
    "MissingEnv",
    "interpolate",
    "load_yaml_text",
]

#: The largest config file read, in bytes (real ones are a few KiB).
MAX_CONFIG_BYTES = 256 * 1024
#: The deepest nesting of mappings and lists (aliases expanded); the top level is level 1.
MAX_DEPTH = 64
#: The most alias uses (``*name``) in one file.
MAX_ALIASES = 1_000
#: The most values (keys, items and scalars, aliases expanded) in one file.
MAX_VALUES = 20_000

Path = tuple[str | int, ...]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(r"__gateway_env_(\d+)__")
_TAG = "tag:yaml.org,2002:"
#: The scalar types a config is written with (a timestamp is what YAML makes of 2026-01-15).
_SCALAR_TAGS = frozenset(
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_MAP_TAGS = frozenset({_TAG + "map"})
_SEQ_TAGS = frozenset({_TAG + "seq"})
_LIMIT_FIX = (
    "a config holds plain settings: write them out plainly (see the README's YAML reference)"
)


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


def _over_limit(what: str, *, file: str, line: int | None) -> ConfigError:
    return ConfigError(
        f"this file is over a config's limits: {what}", file=file, line=line, fix=_LIMIT_FIX
    )


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader whose composer stops at :data:`MAX_DEPTH`, :data:`MAX_VALUES` and
    :data:`MAX_ALIASES` (PyYAML composes recursively, one Python frame per level), and
    remembers each anchor's name for messages."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.anchor_names: dict[int, str] = {}
        self._depth = 0
        self._values = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _over_limit(f"more than {MAX_ALIASES:,} aliases", file=self.file, line=line)
            alias = super().compose_node(parent, index)
            return alias
        self._values += 1
        if self._values > MAX_VALUES:
            raise _over_limit(f"more than {MAX_VALUES:,} values", file=self.file, line=line)
        if self._depth >= MAX_DEPTH:
            raise _over_limit(
                f"nested more than {MAX_DEPTH} levels deep", file=self.file, line=line
            )
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchor_names[id(node)] = anchor
        return node


def _check_expansion(root: yaml.Node, file: str, anchor_names: Mapping[int, str]) -> None:
    """Refuse a document whose aliases expand it past :data:`MAX_VALUES` values or
    :data:`MAX_DEPTH` levels, or that contains itself, without expanding anything.

    Aliases make the node graph a DAG (or a cycle): each node's expanded size and depth are
    computed once and reused wherever an alias points at it. An anchor comes before its
    aliases, so walking in document order meets every aliased node finished, except one that
    contains its own alias; the recursion is no deeper than the file's nesting.
    """
    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        known = measured.get(id(node))
        if known is not None:
            return known
        line = node.start_mark.line + 1
        if id(node) in open_nodes:
            name = anchor_names.get(id(node), "?")
            raise ConfigError(
                f"the alias *{name} is used inside the value it names (&{name}), "
                "which would make it infinitely deep",
                file=file,
                line=line,
                fix=f"use *{name} only outside the value anchored with &{name}",
            )
        open_nodes.add(id(node))
        values, depth = 1, 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        for child in children:
            child_values, child_depth = measure(child)
            values += child_values
            depth = max(depth, child_depth + 1)
            if values > MAX_VALUES:
                raise _over_limit(
                    f"its aliases expand the value that starts here to more than "
                    f"{MAX_VALUES:,} values",
                    file=file,
                    line=line,
                )
            if depth > MAX_DEPTH:
                raise _over_limit(
                    f"its aliases nest the value that starts here more than {MAX_DEPTH} "
                    "levels deep (with the levels above it)",
                    file=file,
                    line=child.start_mark.line + 1,
                )
        open_nodes.discard(id(node))
        measured[id(node)] = (values, depth)
        return values, depth

    measure(root)


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
            self._check_tag(node, _MAP_TAGS, path)
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, _SEQ_TAGS, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _check_tag(self, node: yaml.Node, allowed: frozenset[str], path: Path) -> None:
        if node.tag in allowed:
            return
        tag = node.tag.replace(_TAG, "!!")
        raise ConfigError(
            f"the tag {tag} is not allowed: a config holds only strings, numbers, true/false, "
            "null, lists and mappings",
            file=self.file,
            line=node.start_mark.line + 1,
            key=dotted(path) or None,
            fix=f"remove {tag}",
        )

    def _construct(self, node: yaml.Node, path: Path) -> Any:
        """A scalar's value; one YAML cannot build (``!!int abc``, ``2026-13-45``) is a
        ConfigError."""
        try:
            return self._scalars.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            raise ConfigError(
                f"cannot read {node.value!r}: {problem}",
                file=self.file,
                line=node.start_mark.line + 1,
                key=dotted(path) or None,
                fix="quote it to make it a string, or correct the value",
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        try:
            self._scalars.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            raise ConfigError(
                f"this is not valid YAML: {exc.problem}",
                file=self.file,
                line=mark.line + 1 if mark is not None else None,
                key=dotted(path) or None,
                fix="'<<' merges a mapping or a list of mappings (e.g. <<: *defaults)",
            ) from None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    "keys must be plain names, not a list or mapping",
                    file=self.file,
                    line=line,
                    key=dotted(path) or None,
                )
            self._check_tag(key_node, _SCALAR_TAGS, path)
            key = self._construct(key_node, path)
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
        self._check_tag(node, _SCALAR_TAGS, path)
        if node.tag == _TAG + "float":
            try:
                number = Decimal(node.value.replace("_", ""))
            except InvalidOperation:
                value = self._construct(node, path)
                return value  # .inf / .nan: let validation reject them by name
            return number
        value = self._construct(node, path)
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

    if len(text) > MAX_CONFIG_BYTES:
        raise _over_limit(f"more than {MAX_CONFIG_BYTES // 1024} KiB", file=file, line=None)
    text = _ENV_REF.sub(to_placeholder, text)
    loader = _LimitedLoader(text, file)
    try:
        node = loader.get_single_node()
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
    finally:
        loader.dispose()
    if node is None:
        return Located({}, file)
    _check_expansion(node, file, loader.anchor_names)
    builder = _Builder(file, environment, refs)
    data = builder.build(node, ())
    return Located(data, file, builder.lines)
