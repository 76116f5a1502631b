"""Delivered HTML is sanitised with nh3 against the policy's allow-list: a tag not listed
is removed and its content kept, script/style and the like go with their content, and
links the policy refuses are unwrapped (their text stays); the plain-text alternative loses
the same links, so both parts say the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field

import nh3

LINK_REMOVED = "[link removed]"


@dataclass(frozen=True, slots=True)
class HtmlCleaning:
    tags: frozenset[str]
    attributes: dict[str, frozenset[str]]
    remove_with_content: frozenset[str]
    url_schemes: frozenset[str]
    unwrap: frozenset[str] = field(default_factory=frozenset)  # link targets to remove

    def with_unwrapped(self, targets: frozenset[str]) -> HtmlCleaning:
        return HtmlCleaning(
            self.tags, self.attributes, self.remove_with_content, self.url_schemes, targets
        )


def sanitize_html(html: str, cleaning: HtmlCleaning) -> str:
    def keep(element: str, attribute: str, value: str) -> str | None:
        if attribute == "href" and value.strip() in cleaning.unwrap:
            return None  # the <a> stays without a target: its text, not a link
        return value

    return _from_private_use(
        nh3.clean(
            _to_private_use(html),
            tags=set(cleaning.tags),
            clean_content_tags=set(cleaning.remove_with_content - cleaning.tags),
            attributes={tag: set(names) for tag, names in cleaning.attributes.items()},
            attribute_filter=keep,
            url_schemes=set(cleaning.url_schemes),
            link_rel=None,
            strip_comments=True,
        )
    )


# Bytes the part's charset could not read are kept as surrogate escapes (pipeline.mime),
# which nh3 cannot take: they cross it as private-use characters and come back unchanged.
_ESCAPES = {code: code - 0xDC80 + 0xF780 for code in range(0xDC80, 0xDD00)}
_UNESCAPES = {value: key for key, value in _ESCAPES.items()}


def _to_private_use(text: str) -> str:
    return text.translate(_ESCAPES)


def _from_private_use(text: str) -> str:
    return text.translate(_UNESCAPES)


def unwrap_plain(text: str, cleaning: HtmlCleaning) -> str:
    """The plain-text alternative without the links its HTML lost."""
    for target in sorted(cleaning.unwrap, key=len, reverse=True):
        text = text.replace(target, LINK_REMOVED)
    return text
