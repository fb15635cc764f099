"""The reviewed Consul API surface (docs/consul-api.yaml) and the check of recorded requests
against it; renders the compatibility table of docs/consul-api.md.

An entry names a method, a path template (`{name}`: one path segment, `{key*}`: the rest of the
path, `{a|b}`: one of those words), the query parameter names and the JSON body fields consulha may send (`Meta.*`: any field
under Meta; `body: raw` for an opaque value such as a KV payload). A request is allowed when an
entry matches its method and path and lists every parameter name and body field it carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab.apirecord import ApiRequest

SURFACE_FILE = Path(__file__).resolve().parent.parent / "docs" / "consul-api.yaml"
DOC_FILE = SURFACE_FILE.with_suffix(".md")
TABLE_START, TABLE_END = "<!-- api table -->", "<!-- /api table -->"


def _segment(placeholder: str) -> str:
    """`{key*}`: the rest of the path; `{a|b}`: one of those words; `{name}`: one segment."""
    inner = placeholder[1:-1]
    if inner.endswith("*"):
        return "(.+)"
    if "|" in inner:
        return "(" + "|".join(map(re.escape, inner.split("|"))) + ")"
    return "([^/]+)"


@dataclass(frozen=True)
class Endpoint:
    id: str
    method: str
    path: str
    query: frozenset[str]
    body: frozenset[str] | str  # field paths, or "raw"
    since: str
    changes: str
    consulha: str
    acl: str
    sources: tuple[str, ...]

    def pattern(self) -> re.Pattern:
        parts = re.split(r"(\{[a-z_|]+\*?\})", self.path)
        regex = "".join(_segment(part) if part.startswith("{") else re.escape(part) for part in parts)
        return re.compile(f"^{regex}$")

    def allows_field(self, field: str) -> bool:
        return self.body == "raw" or field in self.body or any(
            allowed.endswith(".*") and field.startswith(allowed[:-1]) for allowed in self.body)


@dataclass(frozen=True)
class Surface:
    tested: str
    reviewed_up_to: str
    endpoints: tuple[Endpoint, ...]

    def endpoint_for(self, request: ApiRequest) -> Endpoint | None:
        for endpoint in self.endpoints:
            if endpoint.method == request.method and endpoint.pattern().match(request.path):
                return endpoint
        return None

    def violations(self, request: ApiRequest) -> list[str]:
        """What about `request` the reviewed list does not hold, one sentence each."""
        endpoint = self.endpoint_for(request)
        if endpoint is None:
            return [f"{request.describe()}: endpoint not listed"]
        problems = [f"{endpoint.method} {endpoint.path}: query parameter {name!r} not listed"
                    for name in request.query if name not in endpoint.query]
        if endpoint.body != "raw":
            problems += [f"{endpoint.method} {endpoint.path}: body field {field!r} not listed"
                         for field in request.body or () if not endpoint.allows_field(field)]
        return problems


def _endpoint(raw: dict) -> Endpoint:
    body = raw.get("body", [])
    return Endpoint(
        id=raw["id"], method=raw["method"], path=raw["path"],
        query=frozenset(raw.get("query", [])),
        body=body if body == "raw" else frozenset(body),
        since=str(raw["since"]), changes=raw["changes"].strip(), consulha=raw["consulha"].strip(),
        acl=raw["acl"], sources=tuple(raw["sources"]),
    )


def load(path: Path = SURFACE_FILE) -> Surface:
    document = yaml.safe_load(path.read_text())
    return Surface(tested=str(document["tested"]), reviewed_up_to=str(document["reviewed_up_to"]),
                   endpoints=tuple(_endpoint(raw) for raw in document["endpoints"]))


def from_consulha(request: ApiRequest) -> bool:
    """Whether consulha (or a test through its adapter) sent it: the UI test's browser also
    talks to the lab Consul, with the requests of Consul's own web UI."""
    return "Mozilla/" not in request.user_agent


def violations(surface: Surface, requests: list[ApiRequest]) -> list[str]:
    """Every distinct violation among consulha's `requests`, in first-seen order."""
    return list(dict.fromkeys(problem for request in requests if from_consulha(request)
                              for problem in surface.violations(request)))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(surface: Surface) -> str:
    """The compatibility table of docs/consul-api.md, one row per endpoint."""
    rows = ["| request | sends | ACL | since | changes up to " + surface.reviewed_up_to
            + " | what consulha does | sources |", "|---|---|---|---|---|---|---|"]
    for endpoint in surface.endpoints:
        sends = [f"`?{name}`" for name in sorted(endpoint.query)]
        sends += (["raw value"] if endpoint.body == "raw"
                  else [f"`{field}`" for field in sorted(endpoint.body)])
        sources = " ".join(f"[{number}]({url})" for number, url in enumerate(endpoint.sources, 1))
        rows.append(f"| <a id=\"{endpoint.id}\"></a>`{endpoint.method} {_cell(endpoint.path)}` | "
                    f"{', '.join(sends) or '-'} | {_cell(endpoint.acl)} | {endpoint.since} | "
                    f"{_cell(endpoint.changes)} | {_cell(endpoint.consulha)} | {sources} |")
    return "\n".join(rows)


def rendered(doc: str, surface: Surface) -> str:
    """`doc` with the text between the table markers replaced by the current table."""
    start, end = doc.index(TABLE_START) + len(TABLE_START), doc.index(TABLE_END)
    return f"{doc[:start]}\n{table(surface)}\n{doc[end:]}"


if __name__ == "__main__":  # python -m lab.apisurface: re-render docs/consul-api.md
    DOC_FILE.write_text(rendered(DOC_FILE.read_text(), load()))
