"""Names heard wrong in a memo are written the way the CRM spells them before anything is extracted or
drafted (华兴 → 华星, 张宗 → 张总), segment by segment; what was heard is kept in the record."""

from __future__ import annotations

from copilot.agent.linker import correct_names
from tests.copilot.api.test_memos import AUDIO, ScriptedTranscriber, finished, upload
from tests.copilot.conftest import token_for


def test_homophones_of_the_vocabulary_are_corrected_and_nothing_else():
    text, found = correct_names(
        "今天拜访了华兴电子，得我森报价更低，吴布长说再谈。", ["华星电子", "德沃森", "吴部长"]
    )
    assert text == "今天拜访了华星电子，德沃森报价更低，吴部长说再谈。"
    assert {(c.heard, c.name) for c in found} == {
        ("华兴电子", "华星电子"),
        ("吴布长", "吴部长"),
        ("得我森", "德沃森"),
    }
    assert correct_names("拜访客户，聊得不错", ["华星", "德沃森"]) == ("拜访客户，聊得不错", [])


def test_a_memo_transcript_carries_the_crm_names_and_the_corrections(crm_services, client_for):
    crm_services.provide("kb", None)
    crm_services.provide(
        "transcriber", ScriptedTranscriber("今天去了华兴电子，", "张宗希望下周三之前看到方案。")
    )
    client = client_for(crm_services)
    memo_id = upload(client, crm_services, "rep_a", AUDIO / "speech_8k.wav").json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    assert memo["status"] == "done"
    assert [s["text"] for s in memo["transcript"]["segments"]] == [
        "今天去了华星电子，",
        "张总希望下周三之前看到方案。",
    ]
    assert memo["transcript"]["segments"][1]["start"] == 4.0  # timestamps untouched
    assert {(c["heard"], c["name"]) for c in memo["visit_record"]["name_corrections"]} == {
        ("华兴电子", "华星电子"),
        ("张宗", "张总"),
    }


def test_the_uploader_fixes_the_transcript_and_the_record_and_draft_follow(crm_services, client_for):
    crm_services.provide("kb", None)
    crm_services.provide("transcriber", ScriptedTranscriber("今天拜访科普，", "对方希望下周三之前看到方案。"))
    client = client_for(crm_services)
    headers = token_for(crm_services, "rep_a")
    memo_id = upload(client, crm_services, "rep_a", AUDIO / "speech_8k.wav").json()["memo_id"]
    assert finished(client, crm_services, "rep_a", memo_id)["status"] == "done"

    fixed = client.patch(f"/api/memos/{memo_id}", json={"segments": [{"index": 0, "text": "今天拜访客户，"}]},
                         headers=headers)  # fmt: skip
    assert fixed.status_code == 200, fixed.text
    memo = fixed.json()
    assert memo["transcript"]["text"] == "今天拜访客户，对方希望下周三之前看到方案。"
    assert memo["visit_record"]["transcript_as_heard"] == "今天拜访科普，对方希望下周三之前看到方案。"
    assert memo["visit_record"]["corrected_by_rep"] is True and memo["draft"]["op"] == "log_visit"

    other = client.patch(
        f"/api/memos/{memo_id}", json={"text": "别人改的"}, headers=token_for(crm_services, "rep_a2")
    )
    assert other.status_code == 404  # only the uploader, and nobody learns the memo exists
    bad = client.patch(
        f"/api/memos/{memo_id}", json={"segments": [{"index": 9, "text": "x"}]}, headers=headers
    )
    assert bad.status_code == 422 and "序号" in bad.json()["detail"]
    assert client.post(f"/api/memos/{memo_id}/confirm", json={}, headers=headers).status_code == 200
    late = client.patch(f"/api/memos/{memo_id}", json={"text": "确认之后再改"}, headers=headers)
    assert late.status_code == 409  # the CRM has the confirmed visit log already
