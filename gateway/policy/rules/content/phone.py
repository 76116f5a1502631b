"""content.phone: phone numbers, read by phonenumbers for the configured regions as they
are written there (or any, with "+" or "00"), also once written as digits when spelled out
in words, CJK digits or letters, split by letters or words or over lines (numerals.py).
Order, tracking, invoice, tax and bank account numbers (by the words before them, or by
their own shape and check digits: references.py), dates and prices are not phone numbers."""

from __future__ import annotations

from gateway.core.model import Violation
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import EVERYTHING, folded_texts, hit
from gateway.policy.rules.content.contacts import ContactScanner


class PhoneNumber:
    id = "content.phone"
    description = "no phone numbers"

    def __init__(self, scanner: ContactScanner) -> None:
        self._scanner = scanner

    def check(self, ctx: MessageContext) -> list[Violation]:
        for where, text in folded_texts(ctx, EVERYTHING):
            for match in self._scanner.phones(text):
                return [hit(self.id, match.text, where)]
        for link in ctx.content.links:
            if link.target.strip().lower().startswith(("tel:", "sms:")):
                return [hit(self.id, link.target)]
        return []
