"""Consul versions as 1.8 and current releases report them, and what consulha says about them."""

import pytest

from consulha.consul.versions import ClusterVersions, ConsulVersion, Support, server_versions


@pytest.mark.parametrize("text, number", [
    ("1.8.7", (1, 8, 7)),              # /v1/agent/self Config.Version on 1.8
    ("1.16.1+ent", (1, 16, 1)),        # newer releases carry build metadata
    ("1.21.0-rc1", (1, 21, 0)),
    ("1.8.7:1a2b3c4d", (1, 8, 7)),     # a member's build tag: version:revision
    ("v1.15.2", (1, 15, 2)),
    ("1.9", (1, 9, 0)),
])
def test_every_version_string_parses(text, number):
    assert ConsulVersion.parse(text).number == number


@pytest.mark.parametrize("text, support", [
    ("1.6.10", Support.UNSUPPORTED),   # no NodeChecks
    ("1.7.14", Support.UNTESTED),
    ("1.8.7", Support.TESTED),
    ("1.15.2", Support.REVIEWED),
    ("1.21.3+ent", Support.REVIEWED),
    ("1.22.0", Support.NEWER),
    ("", Support.UNKNOWN),
    ("dev", Support.UNKNOWN),
])
def test_support_by_series(text, support):
    assert ConsulVersion.parse(text).support is support


def members(*servers, client="1.8.7:abc"):
    answer = [{"Name": "app-a", "Status": 1, "Tags": {"role": "node", "build": client}}]
    answer += [{"Name": name, "Status": status, "Tags": {"role": "consul", "build": build}}
               for name, build, status in servers]
    return answer


def test_servers_come_from_the_build_tags_of_members_with_role_consul_that_did_not_leave():
    found = server_versions(members(("srv-a", "1.8.7:9fa5", 1), ("srv-w", "1.16.1+ent:77", 4),
                                    ("srv-old", "1.6.0:11", 3)))
    assert [(name, version.text) for name, version in found] == [("srv-a", "1.8.7"), ("srv-w", "1.16.1+ent")]


def test_the_lines_name_each_agent_and_the_worst_verdict_wins():
    cluster = ClusterVersions(ConsulVersion.parse("1.8.7"),
                              server_versions(members(("srv-a", "1.8.7:1", 1), ("srv-b", "1.22.1:2", 1))))
    lines = [text for _, text in cluster.lines()]
    assert lines[0] == "local agent: Consul 1.8.7 (tested)"
    assert lines[2].startswith("server srv-b: Consul 1.22.1 (newer than reviewed (1.21)")
    assert cluster.worst is Support.NEWER
    assert ClusterVersions(ConsulVersion.parse("1.6.0"), ()).worst is Support.UNSUPPORTED


def test_no_readable_server_is_said_and_warns():
    cluster = ClusterVersions(ConsulVersion.parse("1.8.7"), ())
    assert cluster.worst is Support.UNKNOWN and cluster.worst.warns
    assert "no members with role=consul" in cluster.lines()[-1][1]
