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
from gateway.policy.rules.content.social import SocialContact


class ContentRuleSet:
    """Every content rule of one policy version, in the order their refusals are listed."""

    def __init__(self, policy: ContentPolicy) -> None:
        self.policy = policy
        rules = policy.settings.rules
        lexicon = policy.lexicon
        scanner = ContactScanner(lexicon, rules.link, rules.phone)
        sentences = Sentences(
            lexicon.pattern("thanks"), lexicon.pattern("confirmation"), lexicon.pattern("courtesy")
        )
        self.link = OffMarketplaceLink(scanner)
        self.rules: tuple[Rule[MessageContext], ...] = (
            self.link,
            EmailAddress(scanner),
            PhoneNumber(scanner),
            SocialContact(scanner, rules.social, lexicon.pattern("social")),
            Marketing(lexicon.pattern("marketing")),
            FeedbackRequest(lexicon.pattern("feedback_request")),
            ThanksOnly(sentences),
            ConfirmationOnly(sentences),
            CancelReason(lexicon.pattern("cancel_reason")),
            BusinessName(rules.business_name),
            Emoji(),
            StyledText(rules.styled_text),
            LineBreaks(rules.line_breaks),
            AnimatedGif(),
            ImageSize(rules.image_size),
            AttachmentType(rules.attach_type),
            AttachmentSize(rules.attach_size),
        )

    def active(self, direction: Direction) -> list[tuple[Rule[MessageContext], Mode]]:
        """The rules that run for messages in `direction`, with their modes."""
        modes = [(rule, self.policy.mode(rule.id, direction)) for rule in self.rules]
        return [(rule, mode) for rule, mode in modes if mode is not Mode.OFF]

    def unwraps(self, link: Hyperlink) -> bool:
        """An HTML link the sanitiser removes (keeping its text): one content.link refuses."""
        return self.link.refuses(link)
