"""Reading YAML nodes: every value comes from its node, so errors carry FILE:LINE: key.path."""

import difflib
import os
from typing import Any, Callable, Iterable

import yaml

from consulha.config import values
from consulha.config.model import ConfigError

_REQUIRED = object()
_NULL_TAG = "tag:yaml.org,2002:null"
_NODE_KINDS = {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value"}


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class Document:
    """The config file being loaded: where errors point, where relative paths start, what was warned."""

    def __init__(self, path: str):
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self.constructor = yaml.constructor.SafeConstructor()
        self.warnings: list[str] = []

    def compose(self) -> yaml.Node:
        """Return the root node; raise ConfigError if the file is unreadable, not YAML, or empty."""
        try:
            with open(self.path, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as problem:
            raise ConfigError(self.path, "", f"cannot read config file: {problem.strerror or problem}") from None
        except UnicodeDecodeError:
            raise ConfigError(self.path, "", "config file is not valid UTF-8") from None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as problem:
            raise self.yaml_error(problem) from None
        if root is None:
            raise ConfigError(self.path, "", "config file is empty")
        return root

    def yaml_error(self, problem: yaml.YAMLError, key_path: str = "") -> ConfigError:
        # Only the short problem text: str(problem) quotes a snippet of the file, which may hold a secret.
        mark = getattr(problem, "problem_mark", None)
        reason = getattr(problem, "problem", None) or getattr(problem, "reason", None) or type(problem).__name__
        return ConfigError(self.path, key_path, f"invalid YAML: {reason}", None if mark is None else mark.line + 1)

    def value(self, node: yaml.Node, key_path: str, convert: Callable[[Any], Any]) -> Any:
        """Return convert(the node's value); raise ConfigError at the node's line if that fails."""
        if not isinstance(node, yaml.ScalarNode):
            message = f"expected a single value, got {_NODE_KINDS[type(node)]}"
            raise ConfigError(self.path, key_path, message, _line(node))
        try:
            return convert(self.constructor.construct_object(node))
        except yaml.YAMLError as problem:
            raise self.yaml_error(problem, key_path) from None
        except ValueError as problem:
            raise ConfigError(self.path, key_path, str(problem), _line(node)) from None


class Mapping:
    """One YAML mapping of a config section; keys outside `allowed` and duplicate keys are errors."""

    def __init__(
        self, document: Document, node: yaml.Node, key_path: str, allowed: Iterable[str], line: int | None = None
    ):
        if not isinstance(node, yaml.MappingNode):
            problem = f"must be a mapping, got {_NODE_KINDS[type(node)]}"
            message = problem if key_path else f"the top level {problem}"
            raise ConfigError(document.path, key_path, message, line or _line(node))
        try:
            document.constructor.flatten_mapping(node)  # resolves YAML merge keys (<<: *defaults)
        except yaml.YAMLError as problem:
            raise document.yaml_error(problem, key_path) from None
        self.document = document
        self.key_path = key_path
        self.line = line or _line(node)
        self.entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        allowed = sorted(allowed)
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                raise ConfigError(document.path, key_path, "keys must be plain names", _line(key_node))
            if key in self.entries:
                first_line = _line(self.entries[key][0])
                message = f"duplicate key (first given on line {first_line})"
                raise ConfigError(document.path, self.path_of(key), message, _line(key_node))
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
                raise ConfigError(document.path, self.path_of(key), f"unknown key ({hint})", _line(key_node))
            self.entries[key] = (key_node, value_node)

    def path_of(self, key: str) -> str:
        return f"{self.key_path}.{key}" if self.key_path else key

    def line_of(self, key: str) -> int:
        """The key's line, or this mapping's line when the key is absent."""
        return _line(self.entries[key][0]) if key in self.entries else self.line

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.document.path, self.path_of(key), message, self.line_of(key))

    def node(self, key: str) -> yaml.Node | None:
        """The key's value node; None when the key is absent or null, which both mean "use the default"."""
        entry = self.entries.get(key)
        return None if entry is None or entry[1].tag == _NULL_TAG else entry[1]

    def get(self, key: str, convert: Callable[[Any], Any], default: Any = _REQUIRED) -> Any:
        """Return the converted value or the default; raise ConfigError if it is invalid or required and unset."""
        node = self.node(key)
        if node is None:
            if default is _REQUIRED:
                raise self.error(key, "required key is missing")
            return default
        return self.document.value(node, self.path_of(key), convert)

    def section(self, key: str, allowed: Iterable[str], required: bool = False) -> "Mapping":
        """Return the nested mapping; an optional absent one reads as empty so that its defaults apply."""
        node = self.node(key)
        if node is None:
            if required:
                raise self.error(key, "required section is missing")
            node = yaml.MappingNode("tag:yaml.org,2002:map", [])
        return Mapping(self.document, node, self.path_of(key), allowed, self.line_of(key))

    def items(self, key: str, default: list | None = None) -> list[tuple[yaml.Node, str]]:
        """Return (node, key path) per list entry.

        Raises ConfigError if the value is not a non-empty list, or is unset and there is no default.
        """
        node = self.node(key)
        if node is None:
            if default is None:
                raise self.error(key, "required key is missing")
            return default
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(key, f"expected a list, got {_NODE_KINDS[type(node)]}")
        if not node.value:
            raise self.error(key, "must list at least one entry")
        return [(item, f"{self.path_of(key)}[{index}]") for index, item in enumerate(node.value)]

    def file(self, key: str) -> str | None:
        """Return the absolute path (relative ones start at the config's directory); raise ConfigError if unreadable."""
        name = self.get(key, values.as_text, None)
        if name is None:
            return None
        path = os.path.normpath(os.path.join(self.document.directory, os.path.expanduser(name)))
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise self.error(key, f"cannot read file {path}")
        return path

    def secret_file(self, key: str) -> str | None:
        """Return the file's stripped content, warning if group or others may read it.

        Raises ConfigError if the file is unreadable, not UTF-8 or empty.
        """
        path = self.file(key)
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as stream:
                content = stream.read().strip()
        except (OSError, UnicodeDecodeError) as problem:
            reason = getattr(problem, "strerror", None) or "not UTF-8 text"
            raise self.error(key, f"cannot read file {path}: {reason}") from None
        if not content:
            raise self.error(key, f"file {path} is empty")
        mode = os.stat(path).st_mode
        if mode & 0o044:
            self.document.warnings.append(
                str(self.error(key, f"{path} is readable by group or others (mode {mode & 0o777:04o}); chmod 600 it"))
            )
        return content
