"""The full-text index's words: CJK runs as overlapping pairs, other words folded."""

from __future__ import annotations

from gateway.core.terms import Phrase, index_terms, query_phrases


def test_cjk_runs_become_overlapping_pairs_and_other_words_stay_whole() -> None:
    assert index_terms("您好，退款申请 OK") == "您好 退款 款申 申请 ok"
    assert index_terms("発送しました") == "発送 送し しま まし した"
    assert index_terms("订单123号") == "订单 123 号"


def test_words_are_folded_as_the_rules_fold_them() -> None:
    assert index_terms("Größe ＧＲÖＳＳＥ ЗАКАЗ") == "grösse grösse заказ"
    assert index_terms("order_id 113-77") == "order id 113 77"


def test_a_query_asks_for_each_word_as_a_prefix_and_each_cjk_run_as_a_phrase() -> None:
    assert query_phrases("Заказ 退款申请") == [
        Phrase(("заказ",), prefix=True),
        Phrase(("退款", "款申", "申请"), prefix=False),
    ]
    assert query_phrases("货") == [Phrase(("货",), prefix=True)]
    assert query_phrases(" ,. ") == []
