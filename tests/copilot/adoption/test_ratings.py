"""Talk-track ratings: stored per rep and passage, visible per document, and fed to retrieval ranking
through ``KnowledgeBase.set_boosts`` (component tier: real KB with the bundled embedder)."""

from __future__ import annotations

import pytest

from copilot.features.adoption.ratings import RatingStore, boost_for
from tests.copilot.conftest import token_for


def test_boost_grows_with_agreeing_ratings_and_is_bounded():
    assert boost_for([]) == 0.0
    assert boost_for(["effective"]) == pytest.approx(0.5 / 3, abs=1e-4)
    assert boost_for(["effective"] * 3) > boost_for(["effective"])
    assert boost_for(["ineffective"] * 50) > -0.5
    assert boost_for(["effective", "ineffective"]) == 0.0
    assert 0 < boost_for(["partial"]) < boost_for(["effective"])


def test_rating_needs_an_existing_passage(crm_services, client_for):
    client = client_for(crm_services)
    resp = client.post("/api/kb/ratings", headers=token_for(crm_services, "rep_a"),
                       json={"chunk_id": "nope", "rating": "有效", "reason": "x"})  # fmt: skip
    assert resp.status_code == 404


@pytest.mark.models
def test_ratings_change_ranking_through_the_boost_hook(kb_services, client_for):
    kb = kb_services.kb
    query = "客户嫌价格太贵怎么回应"
    before = kb.search(query, k=5)
    assert len(before) >= 2
    first, second = before[0].chunk.id, before[1].chunk.id
    client = client_for(kb_services)
    for user in ("rep_a", "rep_a2", "mgr_a"):
        headers = token_for(kb_services, user)
        bad = client.post("/api/kb/ratings", headers=headers,
                          json={"chunk_id": first, "rating": "无效", "reason": "客户不买账"})  # fmt: skip
        assert bad.status_code == 200, bad.text
        good = client.post("/api/kb/ratings", headers=headers,
                           json={"chunk_id": second, "rating": "有效", "reason": "客户认可"})  # fmt: skip
        assert good.status_code == 200
    assert good.json()["boost"] > 0 and bad.json()["boost"] < 0
    after = [h.chunk.id for h in kb.search(query, k=5)]
    assert after.index(second) < after.index(first)

    # rating again replaces the rater's earlier rating; a fresh KB gets the boosts from the store
    again = client.post("/api/kb/ratings", headers=token_for(kb_services, "rep_a"),
                        json={"chunk_id": first, "rating": "部分有效", "reason": "换个说法有用"})  # fmt: skip
    assert again.json()["rating"] == "部分有效"
    store = RatingStore(kb_services.engine)
    per_doc = store.per_document()
    doc = before[0].document.path
    assert per_doc[doc]["partial"] >= 1 and per_doc[doc]["ineffective"] == 2
    assert set(store.sync(None)) == {first, second}
    listed = client.get("/api/kb/ratings", headers=token_for(kb_services, "rep_a")).json()["ratings"]
    assert {r["user_id"] for r in listed} == {"rep_a"}
