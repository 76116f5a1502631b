"""Replies thread in both mail clients, though neither side sees the other's Message-IDs."""

from __future__ import annotations

from tests.support.gateway import RunningGateway
from tests.support.mail import read, send, text_message


def test_conversation_threads_on_both_sides(gw: RunningGateway) -> None:
    parties = gw.register()

    # 1. The seller writes first.
    first = text_message(
        sender=parties.seller_mailbox, to=parties.buyer_alias, message_id="<s1@shop.example>"
    )
    send(gw.port, parties.seller_mailbox, [parties.buyer_alias], first)
    [at_buyer] = gw.delivered(1)
    g1 = str(read(at_buyer)["Message-ID"])
    assert g1.endswith("@relay.example.test>") and "shop.example" not in g1

    # 2. The buyer's client replies to the message it saw.
    reply = text_message(
        sender=parties.buyer_address,
        to=parties.seller_alias,
        subject="Re: Your order",
        message_id="<b1@mail.example>",
        in_reply_to=g1,
    )
    send(gw.port, parties.buyer_address, [parties.seller_alias], reply)
    at_seller = read(gw.delivered(2)[1])
    assert str(at_seller["In-Reply-To"]) == "<s1@shop.example>"  # the seller's own id
    assert str(at_seller["References"]) == "<s1@shop.example>"
    g2 = str(at_seller["Message-ID"])
    assert "mail.example" not in g2

    # 3. The seller answers, its client listing the whole thread plus a stranger's id.
    answer = text_message(
        sender=parties.seller_mailbox,
        to=parties.buyer_alias,
        subject="Re: Re: Your order",
        message_id="<s2@shop.example>",
        in_reply_to=g2,
    )
    del answer["References"]
    answer["References"] = f"<s1@shop.example> <unknown@elsewhere.example> {g2}"
    send(gw.port, parties.seller_mailbox, [parties.buyer_alias], answer)
    at_buyer_again = read(gw.delivered(3)[2])
    assert str(at_buyer_again["In-Reply-To"]) == "<b1@mail.example>"
    assert str(at_buyer_again["References"]).split() == [g1, "<b1@mail.example>"]


def test_reference_to_another_pair_is_not_mapped(gw: RunningGateway) -> None:
    ours = gw.register()
    other = gw.register(shop="Other Shop", buyer="carla@mail.example")
    send(
        gw.port,
        other.seller_mailbox,
        [other.buyer_alias],
        text_message(
            sender=other.seller_mailbox,
            to=other.buyer_alias,
            message_id="<secret@other-shop.example>",
        ),
    )
    foreign = str(read(gw.delivered(1)[0])["Message-ID"])

    send(
        gw.port,
        ours.seller_mailbox,
        [ours.buyer_alias],
        text_message(sender=ours.seller_mailbox, to=ours.buyer_alias, in_reply_to=foreign),
    )
    delivered = read(gw.delivered(2)[1])
    assert delivered["In-Reply-To"] is None
    assert delivered["References"] is None
