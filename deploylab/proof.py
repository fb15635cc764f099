"""The eight proof steps of issue 7 and two of issue 12 (two groups served by one process per
app host; the upgrade from one unit per group), each asserting something that could fail, each
returning the figures it measured. Bounds are generous where the issue asks for one; the
figures themselves go to bench/results/deploy.json."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from deploylab.hosts import Lab
from deploylab.observe import (
    APP_HOST,
    BILLING_CONFIG,
    CONFIG,
    CONSULHA,
    DNS_SERVERS,
    UNIT,
    agent_role,
    check,
    dns_names,
    fence_epoch,
    history,
    leader_site,
    newest_history,
    other,
    query,
    record_everywhere,
    seconds_since,
    soa_serials,
    status,
    unit,
    wait_for,
)
from deploylab.playbook import (
    BILLING_RECORD,
    LOCK_DELAY,
    RECORD,
    REPO,
    SITE_YML,
    WATCHDOG_SEC,
    random_secret,
    run_playbook,
    tail,
)

# Stated bound for a failover seen on both DNS servers: check interval 1 s + Consul's sync +
# lock_delay + DNS update and NOTIFY/IXFR, with a wide margin for a loaded 2-core machine.
FAILOVER_BOUND = 30.0
UNITS = {"consul_servers": ["consul"], "consulha": ["consul", UNIT, "toy-api", "toy-worker",
                                                    "toy-db", "toy-ledger"],
         "dns_primary": ["named"], "dns_secondary": ["named"]}
GROUP_OF = {"sa": "consul_servers", "sb": "consul_servers", "sw": "consul_servers",
            "ha": "consulha", "hb": "consulha", "dns1": "dns_primary", "dns2": "dns_secondary"}
CONSUL_CLI = "CONSUL_HTTP_ADDR=https://127.0.0.1:8501 CONSUL_CACERT=/etc/consul-tls/ca.pem consul"


def step1_converge(lab: Lab, inventory: Path) -> dict:
    run = run_playbook(inventory, log_name="1-converge")
    check(run.returncode == 0, "site.yml failed:\n" + tail(run.output))
    for host in lab.hosts:
        state = lab.ssh(host, "systemctl is-system-running", check=False).stdout.strip()
        check(state == "running", f"{host}: system {state}")
        for name in UNITS[GROUP_OF[host]]:
            active = lab.ssh(host, f"systemctl is-active {name}", check=False).stdout.strip()
            check(active == "active", f"{host}: {name} is {active}")
    wait_for(lambda: status(lab).get("ok"), 60, "consulha status: a leader, DNS converged", step=1)
    report = status(lab)
    check(set(report["dns"]["answers"]) == {"10.78.0.31:53", "10.78.0.32:53"},
          f"status must verify both DNS servers: {report['dns']}")
    check(dns_names(report["leader"]["site"]), f"DNS does not name the leader: {record_everywhere()}")
    wait_for(lambda: status(lab, config=BILLING_CONFIG).get("ok"), 60,
             "consulha status of group billing: a leader, DNS converged", step=1)
    for host in APP_HOST.values():
        old = lab.ssh(host, "systemctl list-units --all --plain --no-legend 'consulha@*'").stdout.strip()
        check(not old, f"{host}: per-group units in a fresh deployment: {old}")
    return {"first_converge_s": round(run.seconds, 1), "first_leader": report["leader"]["site"]}


def step2_rerun(lab: Lab, inventory: Path) -> dict:
    before = (soa_serials(), record_everywhere())
    run = run_playbook(inventory, log_name="2-rerun")
    check(run.returncode == 0, "site.yml re-run failed:\n" + tail(run.output))
    check(set(run.recap) == set(lab.hosts), f"no recap line for every host: {run.recap}")
    check(not run.changed_hosts(), f"re-run changed something: {run.changed_hosts()}")
    check((soa_serials(), record_everywhere()) == before, "the re-run changed DNS")
    return {"rerun_s": round(run.seconds, 1), "rerun_changed": sum(c["changed"] for c in run.recap.values())}


def step3_service_stopped(lab: Lab) -> dict:
    leader = leader_site(lab)
    started = time.time()
    lab.ssh(APP_HOST[leader], "systemctl stop toy-api")
    seconds = wait_for(lambda: dns_names(other(leader)), FAILOVER_BOUND,
                       f"dns1 and dns2 name site {other(leader)}")
    cause = newest_history(lab, started)
    check(cause["to"] == other(leader) and "check failed: api" in cause["cause"],
          f"history does not say why: {cause}")
    lab.ssh(APP_HOST[leader], "systemctl start toy-api")
    wait_for(lambda: agent_role(lab, leader) == "standby", 60, f"site {leader} back as standby", 0.5)
    return {"service_stop_failover_dns_s": round(seconds, 2), "service_stop_cause": cause["cause"]}


def step4_graceful_stop(lab: Lab) -> dict:
    leader = leader_site(lab)
    host = APP_HOST[leader]
    started = time.time()
    lab.ssh(host, f"systemctl stop {UNIT}")
    seconds = wait_for(lambda: dns_names(other(leader)), FAILOVER_BOUND,
                       f"dns1 and dns2 name site {other(leader)}")
    entry = newest_history(lab, started)
    acquired = seconds_since(started, entry["time"])
    check(entry["to"] == other(leader) and "graceful stop" in entry["cause"], f"history: {entry}")
    check(acquired < LOCK_DELAY, f"took {acquired:.2f}s: lock-delay ({LOCK_DELAY}s) applied")
    stopped = unit(lab, host, "ActiveState", "Result", "ExecMainStatus")
    check(stopped == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"},
          f"unit did not exit cleanly: {stopped}")
    lab.ssh(host, f"systemctl start {UNIT}")
    wait_for(lambda: agent_role(lab, leader) == "standby", 60, f"site {leader} back as standby", 0.5)
    return {"graceful_stop_acquired_s": round(acquired, 2), "graceful_stop_dns_s": round(seconds, 2)}


def step5_reboot(lab: Lab) -> dict:
    """Reboot the leader's host: its agent hands over on the way down and comes back by
    itself (unit enabled, Type=notify ready after its first cycle) as a standby."""
    leader = leader_site(lab)
    host = APP_HOST[leader]
    started = time.monotonic()
    lab.ssh(host, "systemctl reboot", check=False)
    wait_for(lambda: lab.hosts[host].nspawn_pid() is None, 60, f"{host} went down", 0.2)
    lab.boot(host)  # nspawn ends on a reboot request; boot the same host again
    lab.wait_ready(host)
    wait_for(lambda: agent_role(lab, leader) == "standby", 90, f"{host}: agent back as standby", 0.5)
    check(dns_names(other(leader)), f"DNS should name site {other(leader)}: {record_everywhere()}")
    return {"reboot_to_standby_s": round(time.monotonic() - started, 1)}


def step6_watchdog(lab: Lab) -> dict:
    """SIGSTOP the leader's agent: Consul's probes of its heartbeat time out, the other site
    leads after lock_delay, systemd's watchdog kills and restarts the frozen agent, which
    comes back as standby.
    Sampled meanwhile on each DNS server: the fence epoch never goes down and each epoch has
    one value."""
    leader = leader_site(lab)
    host = APP_HOST[leader]
    before = unit(lab, host, "MainPID", "NRestarts")
    started_wall, started = time.time(), time.monotonic()
    lab.ssh(host, f"kill -STOP {before['MainPID']}")
    seen: dict[int, set] = {}
    latest: dict[str, int] = {}
    moved_at = restarted_at = None
    while time.monotonic() - started < WATCHDOG_SEC + 60:
        # Per server, a consistent read: the fence epoch the same before and after the record
        # (a secondary still transferring must not count the primary's epoch for its answer).
        for address in DNS_SERVERS.values():
            epoch = fence_epoch(address)
            answer = tuple(query(address, RECORD, "A"))
            if epoch is not None and fence_epoch(address) == epoch:
                seen.setdefault(epoch, set()).add(answer)
                check(epoch >= latest.get(address, epoch), f"fence epoch went down on {address}")
                latest[address] = epoch
        if moved_at is None and dns_names(other(leader)):
            moved_at = time.monotonic() - started
        if restarted_at is None and unit(lab, host, "NRestarts")["NRestarts"] != before["NRestarts"]:
            restarted_at = time.monotonic() - started
        if moved_at is not None and restarted_at is not None:
            break
        time.sleep(0.2)
    check(moved_at is not None, "leadership did not move while the leader was frozen")
    check(restarted_at is not None, f"systemd did not restart the frozen agent within {WATCHDOG_SEC + 60}s")
    entry = newest_history(lab, started_wall)
    check(entry["to"] == other(leader) and "heartbeat" in entry["cause"], f"history: {entry}")
    lock_moved = seconds_since(started_wall, entry["time"])
    check(lock_moved < restarted_at, "leadership moved only after the watchdog kill, not by the heartbeat")
    journal = lab.ssh(host, f"journalctl -u {UNIT} --no-pager -o cat | grep -i 'watchdog timeout'",
                      check=False).stdout
    check(bool(journal.strip()), "no 'Watchdog timeout' in the unit's journal")
    wait_for(lambda: agent_role(lab, leader) == "standby", 60, f"{host}: agent back as standby", 0.5)
    check(all(len(values) == 1 for values in seen.values()), f"one epoch, two answers: {seen}")
    return {"watchdog_lock_moved_s": round(lock_moved, 2),  # the new leader's history entry
            "watchdog_leader_moved_dns_s": round(moved_at, 2),  # as sampled by this loop
            "watchdog_restart_s": round(restarted_at, 2)}


def step7_acls(lab: Lab) -> dict:
    management = lab.ssh("sa", "cat /etc/consul.d/acl-management.token").stdout.strip()

    def secret(description: str) -> str:
        tokens = json.loads(lab.ssh("sa", f"{CONSUL_CLI} acl token list -format=json -token={management}").stdout)
        accessor = next(t["AccessorID"] for t in tokens if t["Description"] == description)
        return json.loads(lab.ssh("sa", f"{CONSUL_CLI} acl token read -format=json -id {accessor} "
                                        f"-token={management}").stdout)["SecretID"]

    def kv_put(key: str, token: str = "") -> tuple[int, str]:
        option = f"-token={token}" if token else ""
        result = lab.ssh("ha", f"{CONSUL_CLI} kv put {option} {key} probe", check=False)
        return result.returncode, result.stdout + result.stderr

    app, billing = secret("consulha app"), secret("consulha billing")
    code, out = kv_put("consulha/app/deploylab-probe")
    check(code != 0 and "Permission denied" in out, f"anonymous KV write was not refused: {out}")
    code, out = kv_put("consulha/billing/deploylab-probe", app)
    check(code != 0 and "Permission denied" in out, f"group app wrote group billing's prefix: {out}")
    code, out = kv_put("consulha/app/deploylab-probe", billing)
    check(code != 0 and "Permission denied" in out, f"group billing wrote group app's prefix: {out}")
    code, out = kv_put("consulha/app/deploylab-probe", app)
    check(code == 0, f"control: group app could not write its own prefix: {out}")
    lab.ssh("ha", f"{CONSUL_CLI} kv delete -token={app} consulha/app/deploylab-probe")
    return {"acl_checks": 4}


def step8_bad_input(lab: Lab, bad_inventory: Path, inventory: Path) -> dict:
    run = run_playbook(bad_inventory, log_name="8-missing-variable")
    check(run.returncode != 0, "a host without consul_site did not fail the play")
    check("consul_site" in run.output, "the failure does not name consul_site:\n" + tail(run.output))
    check(set(run.recap) == set(lab.hosts), f"no recap line for every host: {run.recap}")
    check(not run.changed_hosts(), f"hosts changed before the failure: {run.changed_hosts()}")
    wrong = random_secret()
    run = run_playbook(inventory, SITE_YML, "--limit", "hb", "-e", f"consulha_tsig_secret={wrong}",
                       log_name="8-unknown-tsig")
    check(run.returncode != 0, "a TSIG secret BIND does not know passed the play")
    failed_task = run.output.split("fatal:")[0].rsplit("TASK [", 1)[-1].split("]")[0]
    check("TSIG" in failed_task and "FAILED" in run.output,
          f"failed elsewhere than `consulha validate --connect`: {failed_task}")
    restore = run_playbook(inventory, SITE_YML, "--limit", "hb", log_name="8-restore")
    check(restore.returncode == 0, "restoring the right TSIG secret failed:\n" + tail(restore.output))
    lab.ssh("hb", f"/opt/consulha/bin/consulha validate -c {CONFIG} --connect")
    return {"bad_input_checks": 2}


def no_secret_in_logs(run_dir: Path, secrets_used: list[str]) -> None:
    """Every playbook output of the run (with no_log where secrets are handled) is free of
    the gossip key, the TSIG secret and the ACL management token."""
    for log_file in run_dir.glob("*.log"):
        text = log_file.read_text()
        leaked = [secret[:4] + "..." for secret in secrets_used if secret and secret in text]
        check(not leaked, f"{log_file.name} contains secrets: {leaked}")


def step9_two_groups(lab: Lab) -> dict:
    """Two groups served by one process on each app host: both have a leader; a service of
    group app stops on the host that leads both; app moves to the other site, billing stays
    (same leader, same epoch, DNS unchanged, no new history entry) and the host's process is
    not restarted."""
    for config in (CONFIG, BILLING_CONFIG):
        wait_for(lambda: status(lab, config=config).get("ok"), 60, f"a leader and DNS ({config})", 1)
    leader = leader_site(lab)
    host = APP_HOST[leader]
    if leader_site(lab, BILLING_CONFIG) != leader:   # both groups led by one host first
        lab.ssh(host, f"{CONSULHA} handover -c {BILLING_CONFIG} --to {leader} --timeout 30s")
        wait_for(lambda: dns_names(leader, BILLING_RECORD), FAILOVER_BOUND, f"billing led by site {leader}")
    billing_before = status(lab, config=BILLING_CONFIG)["leader"]
    billing_history = len(history(lab, config=BILLING_CONFIG))
    process = unit(lab, host, "MainPID", "NRestarts")
    started = time.time()
    lab.ssh(host, "systemctl stop toy-api")
    seconds = wait_for(lambda: dns_names(other(leader)), FAILOVER_BOUND,
                       f"group app: dns1 and dns2 name site {other(leader)}")
    cause = newest_history(lab, started)
    check(cause["to"] == other(leader) and "check failed: api" in cause["cause"], f"app history: {cause}")
    time.sleep(LOCK_DELAY)   # room for a wrong move of billing to show
    billing_after = status(lab, config=BILLING_CONFIG)["leader"]
    check((billing_after["site"], billing_after["epoch"]) == (billing_before["site"], billing_before["epoch"]),
          f"group billing moved: {billing_before} -> {billing_after}")
    check(dns_names(leader, BILLING_RECORD), f"billing's DNS moved: {record_everywhere(BILLING_RECORD)}")
    check(len(history(lab, config=BILLING_CONFIG)) == billing_history, "billing has a new history entry")
    check(unit(lab, host, "MainPID", "NRestarts") == process, f"{host}: the host's process was restarted")
    check(agent_role(lab, leader, "billing") == "leader", f"{host}: STATUS does not say billing leads")
    lab.ssh(host, "systemctl start toy-api")
    wait_for(lambda: agent_role(lab, leader) == "standby", 60, f"site {leader} back as standby for app", 0.5)
    return {"two_groups_one_moves_dns_s": round(seconds, 2), "two_groups_other_unchanged": True}


def _old_release(run_dir: Path) -> Path:
    """site.yml of the release before issue 12 (commit 3daaafc), whose consulha role runs one
    unit per group. Its own roles/ beside it: Ansible looks there before any roles path."""
    old = run_dir / "old-ansible"
    subprocess.run(["rm", "-rf", str(old)], check=True)
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "3daaafc", "ansible"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old), "--strip-components=1"], input=archive, check=True)
    return old


def step10_upgrade(lab: Lab, inventory: Path) -> dict:
    """The upgrade from one unit per group: the leader's host is put back on the release before
    (its site.yml and roles: consulha@app only), made the leader of app again, then site.yml runs on it. The old unit
    is stopped and disabled before consulha.service starts (sampled: never both active), app
    hands over to the other site by the release (no lock-delay), the host comes back as standby
    for both groups, and a re-run changes nothing."""
    leader = leader_site(lab)
    host = APP_HOST[leader]
    lab.ssh(host, f"systemctl disable --now {UNIT}")
    release = _old_release(inventory.parent)
    old = run_playbook(inventory, release / "site.yml", "--limit", host, log_name="10-old-role",
                       roles_path=release / "roles")
    check(old.returncode == 0, "the old role failed:\n" + tail(old.output))
    check(lab.ssh(host, "systemctl is-active consulha@app", check=False).stdout.strip() == "active",
          f"{host}: consulha@app of the old role is not running")
    old_config = "/etc/consulha/app.yaml"
    wait_for(lambda: status(lab, config=CONFIG).get("ok"), 60, "a leader of app", 1)
    if leader_site(lab) != leader:
        lab.ssh(host, f"{CONSULHA} handover -c {old_config} --to {leader} --timeout 30s")
    wait_for(lambda: dns_names(leader), FAILOVER_BOUND, f"app led by site {leader} (old unit)")

    samples: list[tuple[float, str]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            states = lab.ssh(host, "systemctl is-active consulha@app consulha", check=False).stdout.split()
            samples.append((time.time(), " ".join(states)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.time()
    sampler.start()
    run = run_playbook(inventory, SITE_YML, "--limit", host, log_name="10-upgrade")
    wait_for(lambda: agent_role(lab, leader) == "standby" and agent_role(lab, leader, "billing") != "",
             60, f"{host}: back as standby for app", 0.5)
    done.set()
    sampler.join(10)
    check(run.returncode == 0, "the upgrade run failed:\n" + tail(run.output))
    both = [t for t, states in samples if states == "active active"]
    check(not both, f"{host}: consulha@app and consulha active at once ({len(both)} samples)")
    last_old = max((t for t, states in samples if states.split()[0] == "active"), default=started)
    first_new = min((t for t, states in samples if states.split()[-1] == "active" and t > last_old),
                    default=None)
    check(first_new is not None, f"{host}: consulha.service never seen active")
    entry = newest_history(lab, started)
    acquired = seconds_since(last_old, entry["time"])
    check(entry["to"] == other(leader) and "graceful stop" in entry["cause"], f"history: {entry}")
    check(acquired < LOCK_DELAY, f"took {acquired:.2f}s after the old unit: lock-delay applied")
    check(dns_names(other(leader)), f"DNS should name site {other(leader)}: {record_everywhere()}")
    enabled = lab.ssh(host, f"systemctl is-enabled {UNIT}", check=False).stdout.strip()
    old_state = lab.ssh(host, "systemctl is-active consulha@app", check=False).stdout.strip()
    check(enabled == "enabled" and old_state != "active",
          f"{host}: after the upgrade consulha is {enabled}, consulha@app {old_state}")
    check(lab.ssh(host, "test -e /etc/systemd/system/consulha@.service -o -e /etc/consulha/app.yaml",
                  check=False).returncode != 0, f"{host}: the old unit or config file is left")
    rerun = run_playbook(inventory, SITE_YML, "--limit", host, log_name="10-rerun")
    check(rerun.returncode == 0 and not rerun.changed_hosts(),
          f"re-run after the upgrade changed: {rerun.changed_hosts()}")
    return {"upgrade_s": round(run.seconds, 1),
            "upgrade_handover_acquired_s": round(acquired, 2),
            "upgrade_no_agent_on_host_s": round(first_new - last_old, 1),
            "upgrade_rerun_changed": 0}
