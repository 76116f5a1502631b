"""The gateway's image, built by deploy/build-image and run as a container runs it, without a
container runtime: `podman run` is refused on the test machines (crun cannot set its
rlimits), so the image's root file system (`podman mount`) is run in a mount namespace of
its own (unshare) where it is read-only, the data volume and the TLS folder are mounted where
the image expects them, and chroot starts the image's entrypoint as the image's user, in its
working directory, with its environment and nothing else."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
IMAGE = "localhost/bsm-gateway:test"
DATA = "/var/lib/bsm-gateway"  # the image's volume
TLS = "/run/tls"  # where the image's settings look for the certificate


def can_build() -> str | None:
    """None if this machine can build and run the image; else what it lacks."""
    missing = [tool for tool in ("podman", "mmdebstrap", "unshare") if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}"
    if os.geteuid() != 0:
        return "not root (mounts and chroot need it)"
    return None


def build(tag: str = IMAGE) -> None:
    subprocess.run(
        [REPOSITORY / "deploy" / "build-image", tag], check=True, cwd=REPOSITORY, timeout=900
    )


@dataclass(frozen=True)
class Image:
    tag: str
    root: Path  # its root file system, mounted
    user: str  # uid:gid
    env: dict[str, str]
    entrypoint: list[str]
    command: list[str]  # entrypoint + cmd
    workdir: str
    healthcheck: list[str]  # the HEALTHCHECK's CMD
    size: int  # bytes

    def command_line(
        self,
        argv: Sequence[str] | None,
        *,
        data: Path,
        tls: Path,
        env: Mapping[str, str] | None = None,
        pid_file: Path | None = None,
    ) -> list[str]:
        """What runs `argv` (default: the image's command) as a container of the image would:
        the root read-only, `data` as the volume, `tls` read-only at /run/tls. The process's
        pid is written to `pid_file` (it is the one to signal)."""
        argv = self.command if argv is None else list(argv)
        variables = [f"{k}={v}" for k, v in {**self.env, **(env or {})}.items()]
        inside = ["/usr/bin/env", "-i", *variables, "/bin/sh", "-c", 'cd "$0" && exec "$@"']
        inside += [self.workdir, *argv]
        script = "\n".join(
            [
                "set -e",
                "new=$(mktemp -d)",
                f"mount --bind {shlex.quote(str(self.root))} $new",
                "mount -o remount,bind,ro $new",
                "mount -t proc proc $new/proc",
                "mount --rbind /dev $new/dev",
                f"mount --bind {shlex.quote(str(data))} $new{DATA}",
                f"mount --bind {shlex.quote(str(tls))} $new{TLS}",
                f"mount -o remount,bind,ro $new{TLS}",
                f"echo $$ > {shlex.quote(str(pid_file))}" if pid_file else ":",
                f"exec chroot --userspec={self.user} $new {shlex.join(inside)}",
            ]
        )
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script]


@contextmanager
def mounted(tag: str = IMAGE) -> Iterator[Image]:
    """The image's root file system, mounted for the time of the block."""
    container = _podman("create", tag).strip()
    try:
        root = Path(_podman("mount", container).strip())
        [inspected] = json.loads(_podman("image", "inspect", tag))
        config = inspected["Config"]
        health = inspected.get("Healthcheck") or {}
        yield Image(
            tag=tag,
            root=root,
            user=config["User"],
            env=dict(item.split("=", 1) for item in config["Env"]),
            entrypoint=list(config.get("Entrypoint", [])),
            command=[*config.get("Entrypoint", []), *config.get("Cmd", [])],
            workdir=config["WorkingDir"],
            healthcheck=[part for part in health.get("Test", []) if part != "CMD"],
            size=int(inspected["Size"]),
        )
    finally:
        _podman("umount", container)
        _podman("rm", container)


def volume(folder: Path, user: str) -> Path:
    """An empty data volume owned by the image's user, as a new named volume would be."""
    folder.mkdir(parents=True, exist_ok=True)
    uid, gid = (int(part) for part in user.split(":"))
    os.chown(folder, uid, gid)
    return folder


def tls_folder(folder: Path, certificate: Path, private_key: Path, user: str) -> Path:
    """The TLS material as an operator mounts it: fullchain.pem and privkey.pem."""
    folder.mkdir(parents=True, exist_ok=True)
    uid, gid = (int(part) for part in user.split(":"))
    for source, name in ((certificate, "fullchain.pem"), (private_key, "privkey.pem")):
        shutil.copyfile(source, folder / name)
        os.chown(folder / name, uid, gid)
        (folder / name).chmod(0o400)
    return folder


def _podman(*args: str) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout
