"""The Debian bookworm base image the lab hosts boot from, cached as a tarball.

debootstrap takes about a minute, so its result is kept as a zstd tarball outside the
repository (CACHE_DIR) and only rebuilt when the tarball is absent (a fresh machine, or someone
deleted it). The mirror is the one this machine's apt already uses, read at run time.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from pathlib import Path

CACHE_DIR = Path("/var/cache/consulha-deploy")
TARBALL = CACHE_DIR / "bookworm-base.tar.zst"
# What every host needs before Ansible can reach it; the roles install the rest themselves.
PACKAGES = "systemd,systemd-sysv,dbus,python3,openssh-server,iproute2,ca-certificates"


def mirror_uri() -> str:
    """The first Debian URI of this machine's apt sources (deb822 first, then sources.list),
    as scripts/install-deps reads it; a security mirror is mapped to the plain archive."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        match = re.search(r"^URIs:\s*(\S+)", Path(path).read_text(), re.MULTILINE)
        if match:
            return match.group(1).removesuffix("-security")
    sources_list = Path("/etc/apt/sources.list")
    if sources_list.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+://\S+)", sources_list.read_text(), re.MULTILINE)
        if match:
            return match.group(1).removesuffix("-security")
    raise RuntimeError("no apt mirror found in this machine's apt sources")


def ensure_tarball(log=print) -> Path:
    """The cached base tarball, built first if it is missing."""
    if TARBALL.exists():
        return TARBALL
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    build = CACHE_DIR / "build"
    shutil.rmtree(build, ignore_errors=True)
    uri = mirror_uri()
    log(f"building the base image with debootstrap (bookworm, this machine's mirror): {build}")
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm",
                    str(build), uri], check=True, stdout=subprocess.DEVNULL)
    _prepare(build)
    partial = TARBALL.with_suffix(".partial")
    subprocess.run(["tar", "--zstd", "-C", str(build), "-cf", str(partial), "."], check=True)
    partial.rename(TARBALL)
    shutil.rmtree(build)
    return TARBALL


def _prepare(root: Path) -> None:
    """Make one image that many hosts can share: the machine's apt sources, no per-host
    identity (each host gets its own machine-id, SSH host keys and hostname at boot time), no
    background apt runs that would compete with the playbook for the dpkg lock."""
    apt = root / "etc/apt"
    for source in glob.glob("/etc/apt/sources.list.d/*.sources"):
        shutil.copy(source, apt / "sources.list.d")
    if glob.glob("/etc/apt/sources.list.d/*.sources"):
        (apt / "sources.list").write_text("")
    # The machine's mirror may serve a dated snapshot whose Release files are past Valid-Until.
    (apt / "apt.conf.d/99consulha-deploylab").write_text(
        'Acquire::Check-Valid-Until "false";\nAcquire::Languages "none";\n')
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        link = root / "etc/systemd/system" / timer
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    for key in glob.glob(str(root / "etc/ssh/ssh_host_*")):
        Path(key).unlink()
    (root / "etc/hostname").unlink(missing_ok=True)
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True)


def extract(tarball: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--zstd", "-C", str(dest), "-xf", str(tarball)], check=True)
