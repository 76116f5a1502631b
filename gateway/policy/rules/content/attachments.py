"""Attachments and images: allowed types judged by their bytes and their names, the total
size, animated GIFs and oversized images (read by Pillow when the message was read)."""

from __future__ import annotations

from gateway.core.content import Attachment
from gateway.core.model import Violation
from gateway.policy.config import AttachSizeSettings, AttachTypeSettings, ImageSizeSettings
from gateway.policy.rule import MessageContext
from gateway.policy.rules.content.base import hit

# Names of one kind, as filetype names what it finds.
_SAME_KIND = {"jpeg": "jpg", "jpe": "jpg", "tiff": "tif", "htm": "html"}


def _kind(name: str) -> str:
    return _SAME_KIND.get(name.lower(), name.lower())


def extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return _kind(ext) if dot and stem else ""


def _label(attachment: Attachment) -> str:
    return attachment.filename or attachment.declared_type


class AttachmentType:
    id = "attach.type"
    description = "attachments only of the allowed types, judged by their content and name"

    def __init__(self, settings: AttachTypeSettings) -> None:
        self._allowed = frozenset(_kind(t) for t in settings.allowed)

    def check(self, ctx: MessageContext) -> list[Violation]:
        for attachment in ctx.content.attachments:
            named = extension(attachment.filename)
            if attachment.detected not in self._allowed:
                what = f"{_label(attachment)} is {attachment.detected} content"
                return [hit(self.id, what)]
            if attachment.unreadable:  # damaged, or text dressed as an image or a PDF
                what = f"{_label(attachment)} cannot be read as {attachment.detected}"
                return [hit(self.id, what)]
            if named and named not in self._allowed:
                return [hit(self.id, f"{_label(attachment)} is a .{named} file")]
        return []


class AttachmentSize:
    id = "attach.size"
    description = "attachments at most the configured size in total"

    def __init__(self, settings: AttachSizeSettings) -> None:
        self._max = settings.max_total_bytes

    def check(self, ctx: MessageContext) -> list[Violation]:
        total = sum(a.size for a in ctx.content.attachments)
        if total > self._max:
            return [hit(self.id, f"{total:,} bytes of attachments, at most {self._max:,}")]
        return []


class AnimatedGif:
    id = "form.animated_gif"
    description = "no animated GIFs"

    def check(self, ctx: MessageContext) -> list[Violation]:
        for attachment in ctx.content.attachments:
            image = attachment.image
            if image is not None and image.format == "GIF" and image.frames > 1:
                return [hit(self.id, f"{_label(attachment)}: {image.frames} frames")]
        return []


class ImageSize:
    id = "form.image_size"
    description = "no oversized images"

    def __init__(self, settings: ImageSizeSettings) -> None:
        self._width = settings.max_width
        self._height = settings.max_height

    def check(self, ctx: MessageContext) -> list[Violation]:
        for attachment in ctx.content.attachments:
            image = attachment.image
            if image is not None and (image.width > self._width or image.height > self._height):
                size = f"{image.width}x{image.height} px, at most {self._width}x{self._height}"
                return [hit(self.id, f"{_label(attachment)}: {size}")]
        return []
