"""The image, built from Debian's packages and PyPI's wheels (deploy/build-image), run as a
container runs it: read-only root, a data volume, the TLS folder mounted read-only, the
image's own user. It takes mail, answers its HEALTHCHECK and /readyz, reloads on SIGHUP and
stops on SIGTERM with exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.container import IMAGE, Image, build, can_build, mounted, tls_folder, volume
from tests.support.databases import IN_CI
from tests.support.gateway import tls_certificate, wait_for
from tests.support.mail import send, text_message
from tests.support.process import json_log_lines, reserve_port


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    problem = can_build()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"the image cannot be built here: {problem}")
        pytest.skip(f"the image cannot be built here: {problem}")
    started = time.monotonic()
    build(IMAGE)
    with mounted(IMAGE) as built:
        print(f"\nimage built in {time.monotonic() - started:.0f} s: {built.size / 1e6:.0f} MB")
        yield built


class Container:
    """One gateway run from the image, with its volume, TLS folder and ports."""

    def __init__(self, image: Image, folder: Path) -> None:
        self.image = image
        self.data = volume(folder / "data", image.user)
        self.tls = tls_folder(folder / "tls", *tls_certificate(), image.user)
        self.ports = {name: reserve_port() for name in ("mx", "587", "465", "metrics", "console")}
        self.env = {
            "BSM_SMTP__HOST": "127.0.0.1",
            "BSM_SMTP__PORT": str(self.ports["mx"]),
            # The test's sender has no DNS to publish SPF or DKIM in.
            "BSM_SMTP__SENDER_AUTH": "none",
            "BSM_SUBMISSION__HOST": "127.0.0.1",
            "BSM_SUBMISSION__STARTTLS_PORT": str(self.ports["587"]),
            "BSM_SUBMISSION__TLS_PORT": str(self.ports["465"]),
            "BSM_METRICS__HOST": "127.0.0.1",
            "BSM_METRICS__PORT": str(self.ports["metrics"]),
            "BSM_AUDITOR__HOST": "127.0.0.1",
            "BSM_AUDITOR__PORT": str(self.ports["console"]),
        }
        self.pid_file = folder / "serve.pid"
        self.log = folder / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.image.command_line(
                    None, data=self.data, tls=self.tls, env=self.env, pid_file=self.pid_file
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command of the image's entrypoint, as `podman exec` would run it."""
        return self.run_raw(*self.image.entrypoint, *args)

    def run_raw(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.image.command_line(argv, data=self.data, tls=self.tls, env=self.env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def json(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def healthy(self) -> bool:
        return self.run(*self.image.healthcheck[1:]).returncode == 0

    def signal(self, signum: int) -> None:
        os.kill(int(self.pid_file.read_text()), signum)

    def events(self) -> list[str]:
        return [record.get("event", "") for record in json_log_lines(self.log.read_text())]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def container(image: Image, tmp_path: Path) -> Iterator[Container]:
    running = Container(image, tmp_path)
    try:
        yield running
    finally:
        running.close()


def test_the_image_is_non_root_with_a_health_check_and_no_compiler(image: Image) -> None:
    assert image.user == "10001:10001"
    assert image.healthcheck == ["bsm-gateway", "check"]
    assert image.command == ["bsm-gateway", "serve"]
    assert image.env["BSM_CONFIG"] == "/etc/bsm-gateway/gateway.toml"
    for compiler in ("gcc", "cc", "x86_64-linux-gnu-gcc-12", "clang", "c++"):
        assert not (image.root / "usr" / "bin" / compiler).exists(), compiler
    assert not (image.root / "opt" / "bsm-gateway" / "bin" / "pip").exists()


def test_the_image_takes_mail_read_only_as_its_user_and_stops_on_sigterm(
    container: Container,
) -> None:
    container.start()
    assert container.process is not None
    wait_for(container.healthy, timeout=60, interval=0.5)
    assert container.run("check", "--ready").stdout.strip() == "ok"

    seller = container.json("seller", "add", "Sakura Shop", "--mailbox", "owner@sakura.example")
    buyer = container.json("buyer", "add", "kim@buyer.example")
    order = container.json(
        "order", "add", "--seller", str(seller["seller_id"]), "--buyer", str(buyer["buyer_id"])
    )
    # The image's shipped content policy judges it: a real question passes.
    message = text_message(
        sender="owner@sakura.example",
        to=order["buyer_alias"],
        subject="Delivery address",
        body="Hello Kim,\n\nCould you confirm the apartment number for the delivery?\n\nMaria\n",
    )
    refused = send(container.ports["mx"], "owner@sakura.example", [order["buyer_alias"]], message)
    assert refused == {}
    outbox = container.data / "outbox" / "new"
    [delivered] = wait_for(lambda: list(outbox.glob("*")) if outbox.exists() else None)
    assert b"owner@sakura.example" not in delivered.read_bytes()

    # Everything the gateway wrote is in the volume, and the image's user owns it.
    written = [container.data, *container.data.rglob("*")]
    assert {(path.stat().st_uid, path.stat().st_gid) for path in written} == {(10001, 10001)}
    assert (container.data / "gateway.db").exists()

    container.signal(signal.SIGHUP)
    wait_for(lambda: "policy_reloaded" in container.events())
    container.signal(signal.SIGTERM)
    assert container.process.wait(30) == 0
    assert container.events()[-1] == "stopped"


def test_the_root_file_system_is_read_only_and_the_tls_folder_too(container: Container) -> None:
    attempt = (
        "import sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "    except OSError as error:\n"
        "        print(path, error.errno)\n"
        "    else:\n"
        "        print(path, 'written')\n"
    )
    targets = ["/opt/bsm-gateway/x", "/etc/x", "/tmp/x", "/run/tls/x", "/var/lib/bsm-gateway/x"]
    result = container.run_raw("/opt/bsm-gateway/bin/python", "-c", attempt, *targets)
    assert result.returncode == 0, result.stderr
    outcomes = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert outcomes == {
        "/opt/bsm-gateway/x": "30",  # EROFS
        "/etc/x": "30",
        "/tmp/x": "30",
        "/run/tls/x": "30",
        "/var/lib/bsm-gateway/x": "written",
    }
