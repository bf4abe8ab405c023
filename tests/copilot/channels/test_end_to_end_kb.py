"""Both channels against the real conversation and knowledge base (bundled embedder): the reply that
reaches the fake platform carries at least one citation label of the ingested talk-track document."""

from __future__ import annotations

import json

import pytest

from tests.copilot.channels.conftest import ding_headers, ding_text, wait_jobs, wecom_post, wecom_text_xml

pytestmark = pytest.mark.models


@pytest.fixture
def kb_bound(kb_services):
    kb_services.users.upsert_user(
        {
            "id": "rep_a",
            "name": "李雷",
            "role": "rep",
            "team_id": "t_a",
            "wecom_userid": "lilei",
            "dingtalk_userid": "manager4220",
        }
    )
    return kb_services


def test_wecom_question_is_answered_with_a_cited_talk_track(kb_bound, wecom_fake, client_for):
    response = wecom_post(client_for(kb_bound), wecom_text_xml("客户嫌贵怎么回？"))
    wait_jobs(kb_bound)

    assert response.status_code == 200
    text = "".join(wecom_fake.texts())
    assert "价格异议话术" in text and "总拥有成本" in text


def test_dingtalk_question_is_answered_with_a_cited_talk_track(kb_bound, dingtalk_fake, client_for):
    body = json.dumps(ding_text(dingtalk_fake, "客户嫌贵怎么回？"), ensure_ascii=False).encode()
    response = client_for(kb_bound).post("/channels/dingtalk/callback", content=body, headers=ding_headers())
    wait_jobs(kb_bound)

    assert response.status_code == 200
    text = "".join(dingtalk_fake.replies())
    assert "价格异议话术" in text and "总拥有成本" in text
