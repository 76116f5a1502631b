"""The marketplace backend's side in tests: operator configs, failing --json commands, and
SMTP traffic whose archive ids the admin commands and routes then refer to."""

from __future__ import annotations

import re
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

from tests.support.gateway import Parties
from tests.support.mail import text_message, wire_bytes
from tests.support.process import one_json_object, run_cli


def operator_config(folder: Path, database_url: str) -> Path:
    """An operator config on `database_url`; everything else is the shipped default."""
    path = folder / "operator.toml"
    path.write_text(
        f'database_url = "{database_url}"\n[delivery]\ntransport = "maildir:{folder / "out"}"\n'
    )
    return path


def cli_error(config: Path, *args: str) -> str:
    """Run a --json command that must fail: exit 1 and one {"error": "..."}; its text."""
    result = run_cli(config, *args, "--json")
    assert result.returncode == 1, described(result)
    error = one_json_object(result.stdout)
    assert set(error) == {"error"} and isinstance(error["error"], str), error
    return error["error"]


def accepted_as(port: int, sender: str, recipient: str, message: EmailMessage) -> int:
    """Send over SMTP; the archive id of the 250 reply ("accepted for delivery as N")."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail(sender)
        client.rcpt(recipient)
        code, reply = client.data(wire_bytes(message))
    found = re.search(rb"accepted for delivery as (\d+)", reply)
    assert code == 250 and found, (code, reply)
    return int(found.group(1))


def buyer_writes(port: int, parties: Parties, subject: str) -> int:
    """The buyer writes to the seller's alias (which opens a wait); the archive id."""
    mail = text_message(sender=parties.buyer_address, to=parties.seller_alias, subject=subject)
    return accepted_as(port, parties.buyer_address, parties.seller_alias, mail)


def seller_writes(port: int, parties: Parties, subject: str) -> int:
    """The seller writes to the buyer's alias (which closes an open wait); the archive id."""
    mail = text_message(sender=parties.seller_mailbox, to=parties.buyer_alias, subject=subject)
    return accepted_as(port, parties.seller_mailbox, parties.buyer_alias, mail)


def make_traffic(port: int, parties: Parties) -> int:
    """One [Important] and one plain seller message; two buyer messages, the first answered.
    Returns the archive id of the second (still waiting), to mark as needing no response."""
    seller_writes(port, parties, "[Important] Your parcel is delayed")
    buyer_writes(port, parties, "Where is it?")
    seller_writes(port, parties, "Re: Where is it?")
    return buyer_writes(port, parties, "Thanks!")


def described(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}: stdout={result.stdout!r} stderr={result.stderr[-2000:]!r}"
