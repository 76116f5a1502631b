"""Everything a DATA command is judged by, built from one policy version and swapped whole
when the policy is reloaded (SIGHUP), so a message never sees half of each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.model import PARTY_DIRECTIONS, Direction
from gateway.pipeline.sanitize import HtmlCleaning
from gateway.policy.chains import Link, data_chain
from gateway.policy.config import ContentPolicy
from gateway.policy.content import ContentRuleSet
from gateway.policy.rule import MessageContext
from gateway.policy.rules.marketplace import MarketplacePolicy


@dataclass(frozen=True, slots=True)
class Judging:
    version: str  # the policy's content hash, archived with every decision
    help_url: str
    rules: ContentRuleSet
    chains: Mapping[Direction, tuple[Link[MessageContext], ...]]
    html: HtmlCleaning | None  # None: delivered HTML is left as written
    reads_content: bool  # some content rule runs, so the message's content must be read

    @classmethod
    def build(
        cls, policy: ContentPolicy, sender_auth: str, marketplace: MarketplacePolicy
    ) -> Judging:
        rules = ContentRuleSet(policy)
        html = policy.settings.html
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
            version=policy.version,
            help_url=policy.settings.help_url,
            rules=rules,
            chains={d: data_chain(sender_auth, marketplace, rules, d) for d in PARTY_DIRECTIONS},
            html=cleaning,
            reads_content=cleaning is not None or any(rules.active(d) for d in PARTY_DIRECTIONS),
        )
