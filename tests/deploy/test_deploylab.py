"""The deploy lab's own parsing: what `make deploy-test` concludes "changed=0" and "a host
without its site" from must be read right, or those proof steps would pass on nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploylab.playbook import PlaybookRun, parse_recap, write_inventory

RECAP = """
PLAY RECAP *********************************************************************
dns1                       : ok=10   changed=0    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0
ha                         : ok=43   changed=2    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0
"""


def test_recap_lines_are_parsed():
    recap = parse_recap("TASK [x] ***\nchanged: [ha]\n" + RECAP)
    assert {host: counts["changed"] for host, counts in recap.items()} == {"dns1": 0, "ha": 2}
    assert recap["ha"]["ok"] == 43


def test_changed_hosts():
    run = PlaybookRun(0, 1.0, {"dns1": {"changed": 0}, "ha": {"changed": 2}}, "")
    assert run.changed_hosts() == {"ha": 2}


def test_inventory_can_leave_out_one_hosts_variable(tmp_path: Path):
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    good = write_inventory(tmp_path, key).read_text()
    bad = write_inventory(tmp_path, key, drop=("hb", "consul_site")).read_text()
    assert "hb ansible_host=10.78.0.22 consul_site=b" in good
    assert "hb ansible_host=10.78.0.22 consulha_dns_value" in bad
    assert "ha ansible_host=10.78.0.21 consul_site=a" in bad


def test_group_roles_from_a_hosts_status_text():
    from deploylab.observe import group_roles

    assert group_roles("app: leader, epoch 7; billing: standby, epoch None") == {
        "app": "leader", "billing": "standby"}
    assert group_roles("app: starting; billing: standby, epoch 3") == {
        "app": "starting", "billing": "standby"}
    assert group_roles("stopping: releasing the locks") == {"stopping": "releasing the locks"}
    assert group_roles("") == {}
