"""The content rules built from a loaded policy, and the chain links each direction runs."""

from __future__ import annotations

from gateway.core.content import Hyperlink
from gateway.core.model import Direction
from gateway.policy.config import ContentPolicy, Mode
from gateway.policy.rule import MessageContext, Rule
from gateway.policy.rules.content.attachments import (
    AnimatedGif,
    AttachmentSize,
    AttachmentType,
    ImageSize,
)
from gateway.policy.rules.content.business_name import BusinessName
from gateway.policy.rules.content.contacts import ContactScanner
from gateway.policy.rules.content.email import EmailAddress
from gateway.policy.rules.content.form import Emoji, LineBreaks, StyledText
from gateway.policy.rules.content.links import OffMarketplaceLink
from gateway.policy.rules.content.only import ConfirmationOnly, Sentences, ThanksOnly
from gateway.policy.rules.content.phone import PhoneNumber
from gateway.policy.rules.content.phrases import CancelReason, FeedbackRequest, Marketing
from gateway.policy.rules.content.sentences import LearnedSentences
from gateway.policy.rules.content.social import SocialContact
from gateway.policy.rules.content.spelled import unmask_steps
from gateway.policy.scan import TextScan
from gateway.policy.triggers import database


class ContentRuleSet:
    """Every content rule of one policy version, in the order their refusals are listed."""

    def __init__(self, policy: ContentPolicy, scanned: bool = True) -> None:
        """`scanned=False`: no scan, every pattern searched everywhere (the reference the
        tests hold the scan to)."""
        self.policy = policy
        rules = policy.settings.rules
        lexicon = policy.lexicon
        steps = unmask_steps(lexicon, rules.link)
        scan = TextScan(database(lexicon, steps) if scanned else None)
        scanner = ContactScanner(steps, rules.link, rules.phone, lexicon.pattern("reference"), scan)
        learned = LearnedSentences(policy.model)
        sentences = Sentences(
            lexicon.pattern("thanks"),
            lexicon.pattern("confirmation"),
            lexicon.pattern("courtesy"),
            scan,
        )
        names = BusinessName(rules.business_name)
        refusing = frozenset(d for d in Direction if policy.mode(names.id, d) is Mode.ENFORCE)
        self.link = OffMarketplaceLink(scanner, names, refusing)
        self.rules: tuple[Rule[MessageContext], ...] = (
            self.link,
            EmailAddress(scanner),
            PhoneNumber(scanner),
            SocialContact(scanner, rules.social, lexicon.pattern("social"), scan),
            Marketing(lexicon.pattern("marketing"), scan, learned),
            FeedbackRequest(lexicon.pattern("feedback_request"), scan, learned),
            ThanksOnly(sentences, learned),
            ConfirmationOnly(sentences, learned),
            CancelReason(lexicon.pattern("cancel_reason"), scan, learned),
            names,
            Emoji(),
            StyledText(rules.styled_text),
            LineBreaks(rules.line_breaks),
            AnimatedGif(),
            ImageSize(rules.image_size),
            AttachmentType(rules.attach_type),
            AttachmentSize(rules.attach_size),
        )
        # Modes are settled per policy version, not looked up for every message.
        self._active = {direction: self._running(direction) for direction in Direction}

    def _running(self, direction: Direction) -> list[tuple[Rule[MessageContext], Mode]]:
        modes = [(rule, self.policy.mode(rule.id, direction)) for rule in self.rules]
        return [(rule, mode) for rule, mode in modes if mode is not Mode.OFF]

    def active(self, direction: Direction) -> list[tuple[Rule[MessageContext], Mode]]:
        """The rules that run for messages in `direction`, with their modes."""
        return list(self._active[direction])

    def unwraps(self, link: Hyperlink) -> bool:
        """An HTML link the sanitiser removes (keeping its text): one content.link refuses."""
        return self.link.refuses(link)
