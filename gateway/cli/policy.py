"""policy check: the content policy's verdict on a message without sending it; policy
validate: a policy file checked before it is put in force with SIGHUP."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import JsonFlag, app, emit, fail, out, settings_of
from gateway.core.model import Direction, Violation
from gateway.services import compile_policy
from gateway.settings import ConfigError

policy_app = typer.Typer(no_args_is_help=True, help="The content policy.")
app.add_typer(policy_app, name="policy")

REFUSED_EXIT = 1  # check: the policy refuses the message
ERROR_EXIT = 2  # check, validate: the file or the policy cannot be read


class DirectionChoice(StrEnum):
    SELLER_TO_BUYER = "seller-to-buyer"
    BUYER_TO_SELLER = "buyer-to-seller"


PolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", help="A policy.toml (default: the one the config names)."),
]


def _hits(violations: tuple[Violation, ...]) -> list[dict[str, str]]:
    return [{"rule": v.rule_id, "matched": v.detail} for v in violations]


@policy_app.command("check")
def check(
    ctx: typer.Context,
    message: Annotated[Path, typer.Argument(help="The message, an .eml file.")],
    direction: Annotated[
        DirectionChoice, typer.Option("--direction", help="Who writes to whom.")
    ] = DirectionChoice.SELLER_TO_BUYER,
    policy_path: PolicyOption = None,
    as_json: JsonFlag = False,
) -> None:
    """What the content rules say about MESSAGE: each violation with what matched, and the
    reply an SMTP session would get. Exit 0: it passes; 1: refused; 2: unreadable."""
    settings = settings_of(ctx)
    # The message's reading and the rules: imported by the commands that use them.
    from gateway.intake.check import check_message
    from gateway.pipeline.parse import MessageFormatError

    try:
        policy = compile_policy(settings, policy_path)
        raw = message.read_bytes()
        verdict = check_message(
            raw, policy, Direction(direction.value.replace("-", "_")), settings.alias_domain
        )
    except ConfigError as error:
        fail(str(error), as_json, ERROR_EXIT)
    except OSError as error:
        fail(f"{message}: {error.strerror or error}", as_json, ERROR_EXIT)
    except MessageFormatError as error:
        fail(f"{message}: {error}", as_json, ERROR_EXIT)
    result = {
        "file": str(message),
        "direction": direction.value,
        "policy_version": verdict.policy_version,
        "verdict": "pass" if verdict.passed else "refuse",
        "violations": _hits(verdict.refused),
        "shadowed": _hits(verdict.shadowed),
        "reply": str(verdict.reply) if verdict.reply else None,
    }

    def human() -> None:
        if verdict.passed:
            out.print(f"[green]pass[/green] ({direction.value}, policy {verdict.policy_version})")
        else:
            out.print(f"[red]refused[/red] ({direction.value}, policy {verdict.policy_version})")
        if verdict.refused or verdict.shadowed:
            table = Table()
            for column in ("rule", "mode", "what matched"):
                table.add_column(column)
            for mode, violations in (("enforce", verdict.refused), ("shadow", verdict.shadowed)):
                for violation in violations:
                    table.add_row(violation.rule_id, mode, violation.detail)
            out.print(table)
        if verdict.reply is not None:
            out.print("The sender would read:", style="bold")
            out.print(str(verdict.reply), markup=False, highlight=False, soft_wrap=True)

    emit(result, as_json, human)
    if not verdict.passed:
        raise typer.Exit(REFUSED_EXIT)


@policy_app.command("validate")
def validate(
    ctx: typer.Context, policy_path: PolicyOption = None, as_json: JsonFlag = False
) -> None:
    """Read a policy and its lexicons as SIGHUP would; print its version, or what is wrong."""
    try:
        policy = compile_policy(settings_of(ctx), policy_path).content
    except ConfigError as error:
        fail(str(error), as_json, ERROR_EXIT)
    modes = {
        rule_id: {
            d.value: policy.mode(rule_id, d).value for d in Direction if d.value.count("_") == 2
        }
        for rule_id in policy.rule_ids
    }
    emit(
        {
            "policy_version": policy.version,
            "languages": list(policy.lexicon.languages),
            "rules": modes,
        },
        as_json,
        lambda: out.print(f"policy {policy.version}: valid ({len(modes)} rules)"),
    )
