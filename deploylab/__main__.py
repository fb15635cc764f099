"""`make deploy-test`: boot the seven lab hosts, deploy the whole topology with
ansible/site.yml as a user would (two groups per app host, one process each host), run the
eight proof steps of issue 7 and the two of issue 12, write the figures to
bench/results/deploy.json, and tear everything down (also after a failure).

    python -m deploylab [--keep]     # root; --keep leaves the hosts up for a look afterwards
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone

from deploylab import proof
from deploylab.hosts import DEPLOY, RUN_DIR, Lab, begin_run, log_failure, prepare_base
from deploylab.observe import StepFailed
from deploylab.playbook import (
    LOCK_DELAY,
    REPO,
    WATCHDOG_SEC,
    build_wheelhouse,
    lab_hosts,
    write_group_vars,
    write_inventory,
)

RESULTS = REPO / "bench" / "results" / "deploy.json"


def log(message: str) -> None:
    print(f"[deploy-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the hosts running at the end")
    args = parser.parse_args()
    started = time.monotonic()
    key = begin_run(DEPLOY, log)
    lab = Lab(lab_hosts(), key, log)
    figures: dict = {}
    try:
        base = prepare_base(log)
        lab.up_network()
        lab.prepare(base)
        boot_started = time.monotonic()
        for name in lab.hosts:
            lab.boot(name)
        for name in lab.hosts:
            lab.wait_ready(name)
        figures["boot_s"] = round(time.monotonic() - boot_started, 1)
        log(f"{len(lab.hosts)} hosts booted, systemd running, SSH up: {figures['boot_s']}s")
        inventory = write_inventory(RUN_DIR, key)
        bad_inventory = write_inventory(RUN_DIR, key, drop=("hb", "consul_site"))
        secrets_used = write_group_vars(RUN_DIR, build_wheelhouse(RUN_DIR))
        toys = proof.run_playbook(inventory, REPO / "deploylab/toys.yml", log_name="0-toys")
        if toys.returncode != 0:
            raise StepFailed("toy services failed:\n" + toys.output[-3000:])
        steps = [("1 converge", lambda: proof.step1_converge(lab, inventory)),
                 ("2 re-run is idempotent", lambda: proof.step2_rerun(lab, inventory)),
                 ("3 a leader's service stops", lambda: proof.step3_service_stopped(lab)),
                 ("4 graceful stop of the leader's agent", lambda: proof.step4_graceful_stop(lab)),
                 ("5 reboot of the leader's host", lambda: proof.step5_reboot(lab)),
                 ("6 frozen leader, systemd watchdog", lambda: proof.step6_watchdog(lab)),
                 ("7 ACLs", lambda: proof.step7_acls(lab)),
                 ("8 bad input", lambda: proof.step8_bad_input(lab, bad_inventory, inventory)),
                 ("9 two groups, one service stops: one group moves",
                  lambda: proof.step9_two_groups(lab)),
                 ("10 upgrade from one unit per group", lambda: proof.step10_upgrade(lab, inventory))]
        for name, step in steps:
            log(f"step {name} ...")
            result = step()
            figures.update(result)
            log(f"step {name}: ok {result}")
        management_token = lab.ssh("sa", "cat /etc/consul.d/acl-management.token").stdout.strip()
        proof.no_secret_in_logs(RUN_DIR, secrets_used + [management_token])
        log("no secret in any playbook output")
    except (StepFailed, subprocess.CalledProcessError, RuntimeError) as error:
        log_failure(error, DEPLOY, log)
        return 1
    finally:
        if not args.keep:
            log("tearing down")
            lab.close()
    figures.update(total_s=round(time.monotonic() - started, 1), hosts=len(lab.hosts),
                   lock_delay_s=LOCK_DELAY, watchdog_sec=WATCHDOG_SEC,
                   date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    RESULTS.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    log(f"all {len(steps)} steps passed; figures in {RESULTS.relative_to(REPO)}:")
    print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
