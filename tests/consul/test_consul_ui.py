"""What an operator sees in the Consul web UI: each site's instance tagged with its role."""

from __future__ import annotations

import shutil

import pytest

from lab.pair import wait_until

pytestmark = pytest.mark.integration

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")
CHROMIUM = shutil.which("chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by scripts/install-deps")
def test_consul_ui_shows_leader_and_standby_instances(lab, tmp_path):
    lab.start("a")
    lab.wait_leader("a")
    lab.start("b")
    lab.wait_candidates("a", "b")
    wait_until(lambda: sorted(s["Tags"][0] for s in lab.store.local_services().values())
               == ["leader", "standby"], 10, what="role tags")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{lab.consul.address}/ui/dc1/services/api/instances")
            page.wait_for_selector("text=leader", timeout=30_000)
            page.wait_for_selector("text=standby", timeout=30_000)
            text = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "consul-ui.png"), full_page=True)
        finally:
            browser.close()
    a_row = text[text.index("app-a-api"):text.index("app-b-api")]
    b_row = text[text.index("app-b-api"):]
    assert "leader" in a_row and "standby" not in a_row, text[:2000]
    assert "standby" in b_row and "leader" not in b_row, text[:2000]
