"""The API-surface check itself (no Consul): path templates, unlisted parameters and fields, the
rendered table, and the version range in the code equal to the reviewed list."""

from lab import apisurface
from lab.apirecord import ApiRequest, body_fields, parse_request
from consulha.consul import versions


def request(method, path, query=(), body=None, agent="python-requests/2"):
    return ApiRequest(method, path, tuple(query), tuple(body) if body is not None else None, agent)


SURFACE = apisurface.load()


def test_listed_requests_pass_whatever_the_ids_and_keys():
    for allowed in [
        request("GET", "/v1/kv/consulha/app/leader", ["consistent", "index", "wait"]),
        request("PUT", "/v1/kv/consulha/app/sites/a", ["cas"], ["site", "role"]),  # KV bodies are raw
        request("PUT", "/v1/session/renew/0d2f9a34-1111-2222-3333-444455556666"),
        request("PUT", "/v1/agent/check/fail/service:app-a-api", ["note"]),
        request("PUT", "/v1/agent/service/register", [], ["id", "check", "check.HTTP", "meta", "meta.anything"]),
    ]:
        assert SURFACE.violations(allowed) == [], allowed


def test_a_new_endpoint_parameter_or_body_field_is_named():
    assert SURFACE.violations(request("GET", "/v1/agent/metrics")) == [
        "GET /v1/agent/metrics: endpoint not listed"]
    assert SURFACE.violations(request("GET", "/v1/kv/x", ["stale"])) == [
        "GET /v1/kv/{key*}: query parameter 'stale' not listed"]
    assert SURFACE.violations(request("PUT", "/v1/session/create", [], ["Name", "Checks"])) == [
        "PUT /v1/session/create: body field 'Checks' not listed"]
    assert SURFACE.violations(request("PUT", "/v1/agent/check/maybe/x")) == [
        "PUT /v1/agent/check/maybe/x: endpoint not listed"]


def test_the_ui_tests_browser_is_not_consulha():
    browser = request("GET", "/v1/catalog/datacenters", agent="Mozilla/5.0 (X11) HeadlessChrome")
    assert apisurface.violations(SURFACE, [browser]) == []


def test_the_recorder_parses_names_never_values():
    head = (b"PUT /v1/agent/check/register?dc=x&token= HTTP/1.1\r\nHost: h\r\n"
            b"User-Agent: python-requests/2.31\r\nContent-Length: 2")
    parsed = parse_request(head, b'{"Name": "n", "Check": {"HTTP": "u"}, "Checks": [{"ID": 1}]}')
    assert parsed.query == ("dc", "token")
    assert parsed.body == ("Name", "Check", "Check.HTTP", "Checks", "Checks[].ID")
    assert body_fields(["not", "an", "object"]) == []


def test_docs_table_is_rendered_from_the_list():
    doc = apisurface.DOC_FILE.read_text()
    assert apisurface.rendered(doc, SURFACE) == doc, "run python -m lab.apisurface"


def test_the_code_knows_the_range_the_list_was_reviewed_for():
    assert ".".join(map(str, versions.TESTED)) == SURFACE.tested.rsplit(".", 1)[0]
    assert ".".join(map(str, versions.REVIEWED_UP_TO)) == SURFACE.reviewed_up_to
