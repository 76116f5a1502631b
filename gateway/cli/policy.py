"""policy check: the content policy's verdict on a message without sending it; policy
validate: a policy file checked before it is put in force with SIGHUP."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from gateway.cli.common import JsonFlag, app, emit, err, fail, out, settings_of
from gateway.core.model import Direction, Violation
from gateway.services import compile_policy
from gateway.settings import ConfigError

if TYPE_CHECKING:
    from gateway.intake.score import Case

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


@policy_app.command("score")
def score(
    ctx: typer.Context,
    corpus: Annotated[list[Path], typer.Argument(help="Labelled .eml files, or folders of them.")],
    policy_path: PolicyOption = None,
    misses: Annotated[
        bool, typer.Option("--misses", help="List each message judged otherwise than labelled.")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the tables as Markdown.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="PREFIX",
            help="Score only the rules whose ids start with PREFIX (repeatable), e.g. "
            "'content.': the families the corpus labels.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Precision and recall of each content rule over a labelled corpus (X-Policy-Expect,
    X-Policy-Direction and X-Policy-Language fields), overall and per language."""
    settings = settings_of(ctx)
    from gateway.intake.score import (
        LabelError,
        judge_all,
        labelled_files,
        markdown_tables,
        misjudged,
        score_report,
        within,
    )
    from gateway.pipeline.parse import MessageFormatError

    files = labelled_files(corpus)
    try:
        policy = compile_policy(settings, policy_path)
        with Progress(console=err, disable=as_json, transient=True) as bar:
            task = bar.add_task("judging", total=len(files))
            cases = judge_all(files, policy, settings.alias_domain, lambda: bar.advance(task))
    except ConfigError as error:
        fail(str(error), as_json, ERROR_EXIT)
    except OSError as error:
        fail(f"{error.filename}: {error.strerror or error}", as_json, ERROR_EXIT)
    except (LabelError, MessageFormatError) as error:
        fail(str(error), as_json, ERROR_EXIT)
    rule_ids = policy.content.rule_ids
    if only:
        cases = within(cases, only)
        rule_ids = tuple(r for r in rule_ids if r.startswith(tuple(only)))
    report = score_report(cases, rule_ids, policy.content.version)
    wrong = misjudged(cases) if misses else []
    if markdown and not as_json:
        print("\n".join(markdown_tables(report)))
        return
    emit(report, as_json, lambda: print_scores(report, wrong))


def print_scores(report: dict[str, Any], wrong: list[Case]) -> None:
    out.print(
        f"policy {report['policy_version']}: {report['messages']} messages, "
        f"{report['exact']} judged exactly as labelled, "
        f"{report['clean_passed']} of {report['clean']} clean ones passed"
    )
    rules = Table(title="per rule")
    for column in ("rule", "positives", "found", "precision", "recall"):
        rules.add_column(column, justify="left" if column == "rule" else "right")
    for row in [*report["rules"], report["overall"]]:
        rules.add_row(
            row["rule"],
            str(row["positives"]),
            str(row["found"]),
            f"{row['precision']:.2f}",
            f"{row['recall']:.2f}",
        )
    out.print(rules)
    by_language = Table(title="per language: precision recall")
    by_language.add_column("rule")
    for language in report["languages"]:
        by_language.add_column(language, justify="right")
    rule_ids = [row["rule"] for row in report["rules"]]
    for rule_id in [*rule_ids, "all"]:
        cells = []
        for block in report["languages"].values():
            found = [r for r in [*block["rules"], block["overall"]] if r["rule"] == rule_id]
            cells.append(f"{found[0]['precision']:.2f}/{found[0]['recall']:.2f}" if found else "-")
        by_language.add_row(rule_id.removeprefix("content."), *cells)
    by_language.add_row(
        "clean passed",
        *(f"{b['clean_passed']}/{b['clean']}" for b in report["languages"].values()),
    )
    out.print(by_language)
    for case in wrong:
        said = "; ".join(f"{rule} {matched}" for rule, matched in case.matched) or "-"
        out.print(
            f"{case.name}: expected {sorted(case.expected) or 'none'}, "
            f"found {sorted(case.found) or 'none'}: {said}",
            markup=False,
            highlight=False,
        )
