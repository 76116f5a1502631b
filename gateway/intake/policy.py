"""The compiled policy: everything a message is judged and rewritten by, built in one place
from one content policy version and the marketplace's settings, and swapped whole when the
policy is reloaded (SIGHUP), so that a message never sees half of each. `serve`, `policy
check` and the tests use the same object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.model import PARTY_DIRECTIONS, Direction
from gateway.pipeline.sanitize import HtmlCleaning
from gateway.policy.chains import (
    RCPT_CHAIN,
    SUBMISSION_RCPT_CHAIN,
    Action,
    Link,
    data_chain,
)
from gateway.policy.config import OFF_POLICY, ContentPolicy, Mode
from gateway.policy.content import ContentRuleSet
from gateway.policy.rule import MessageContext, RecipientContext
from gateway.policy.rules.marketplace import MarketplacePolicy


@dataclass(frozen=True, slots=True)
class Policy:
    version: str  # the content policy's hash, archived with every decision
    help_url: str
    content: ContentPolicy
    rules: ContentRuleSet
    marketplace: MarketplacePolicy
    sender_auth: str  # "aligned" | "dkim" | "spf" | "none": what the MX path requires
    rcpt_chain: tuple[Link[RecipientContext], ...]
    submission_rcpt_chain: tuple[Link[RecipientContext], ...]
    data_chains: Mapping[Direction, tuple[Link[MessageContext], ...]]
    content_chains: Mapping[Direction, tuple[Link[MessageContext], ...]]  # policy check
    html: HtmlCleaning | None  # None: delivered HTML is left as written
    reads_content: bool  # some content rule runs, so the message's content must be read

    @classmethod
    def compile(
        cls,
        content: ContentPolicy = OFF_POLICY,
        marketplace: MarketplacePolicy | None = None,
        sender_auth: str = "aligned",
        scanned: bool = True,
    ) -> Policy:
        """`scanned=False`: the content rules search everywhere, without the scan (the
        reference the tests hold the scan to)."""
        marketplace = marketplace or MarketplacePolicy()
        rules = ContentRuleSet(content, scanned)
        html = content.settings.html
        cleaning = (
            HtmlCleaning(
                tags=frozenset(html.tags),
                attributes={tag: frozenset(names) for tag, names in html.attributes.items()},
                remove_with_content=frozenset(html.remove_with_content),
                url_schemes=frozenset(html.url_schemes),
            )
            if html.sanitize
            else None
        )
        return cls(
            version=content.version,
            help_url=content.settings.help_url,
            content=content,
            rules=rules,
            marketplace=marketplace,
            sender_auth=sender_auth,
            rcpt_chain=RCPT_CHAIN,
            submission_rcpt_chain=SUBMISSION_RCPT_CHAIN,
            data_chains={
                d: data_chain(sender_auth, marketplace, rules, d) for d in PARTY_DIRECTIONS
            },
            content_chains={
                d: tuple(
                    Link(rule, Action.REJECT if mode is Mode.ENFORCE else Action.SHADOW)
                    for rule, mode in rules.active(d)
                )
                for d in PARTY_DIRECTIONS
            },
            html=cleaning,
            reads_content=cleaning is not None or any(rules.active(d) for d in PARTY_DIRECTIONS),
        )

    def with_content(self, content: ContentPolicy) -> Policy:
        """The same marketplace rules with another content policy (a reload)."""
        return Policy.compile(content, self.marketplace, self.sender_auth)
