"""The settings bench/wan.py runs each WAN profile with are ones consulha and Consul accept."""

import pytest

from bench.wan_systems import SETTINGS, ConsulSettings, TunedConsulNode
from consulha.config import load_config
from lab.netns import NetLab
from lab.site import http_service, site_config, write_config


@pytest.mark.parametrize("profile", sorted(SETTINGS))
def test_a_profiles_agent_settings_load_as_a_consulha_config(tmp_path, profile):
    agent = SETTINGS[profile].agent
    service = http_service("api", "http://127.0.0.1:9/health")
    service["check"].update(agent.check())
    document = site_config("a", "http://127.0.0.1:8500",
                           {"zone": "example.test.", "record": "app.example.test.", "server": "127.0.0.1:53"},
                           [service], "192.0.2.1", session=agent.session())
    config = load_config(write_config(tmp_path / "a.yaml", document))
    assert config.session.node_checks == agent.node_checks
    assert config.services[0].check.failures_before_critical == agent.failures_before_critical
    assert f"{config.session.lock_delay:g}s" == agent.lock_delay
    assert f"{config.session.ttl:g}s" == agent.ttl


def test_a_tuned_consul_agent_runs_with_the_profiles_raft_and_serf_timing(tmp_path):
    settings = ConsulSettings(raft_multiplier=3, gossip_lan=(("probe_timeout", "1s"), ("suspicion_mult", 6)))
    config = TunedConsulNode(NetLab(tmp_path), "sa", True, settings)._config()
    assert config["performance"] == {"raft_multiplier": 3}
    assert config["gossip_lan"] == {"probe_timeout": "1s", "suspicion_mult": 6}
    assert config["server"] and config["bind_addr"] == NetLab.addr("sa")   # the lab's own keys stay
