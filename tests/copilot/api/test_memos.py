"""POST/GET /api/memos on the real app: real recordings through decode → Whisper → extraction, bad
uploads kept and marked failed with a Chinese error, scoping, size limit, and resume after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot.api.app import create_app
from copilot.container import build_container
from copilot.features.crm_import import CRMImporter
from copilot.features.memos.hotwords import memo_hotwords
from copilot.settings import Settings
from copilot.voice.transcribe import Segment, Transcript
from tests.copilot.conftest import DATA, token_for

AUDIO = DATA / "audio"


@pytest.fixture(autouse=True)
def crm_only_suggestions(request):
    """Memo suggestions come from the CRM and memos here; loading the KB's embedder is left to KB tests."""
    if "crm_services" in request.fixturenames:
        request.getfixturevalue("crm_services").provide("kb", None)


@pytest.fixture(scope="module")
def whisper(models_dir):
    from copilot.voice.transcribe import WhisperTranscriber
    from copilot.voice.whisper_model import ensure_whisper_model

    return WhisperTranscriber(ensure_whisper_model(models_dir))


class ScriptedTranscriber:
    """Stands in for Whisper where the test is about the pipeline, not recognition."""

    def __init__(self, *texts: str) -> None:
        self.texts = texts
        self.calls: list[dict] = []

    def transcribe(self, audio, *, hotwords=(), language=None) -> Transcript:
        self.calls.append({"hotwords": list(hotwords), "samples": len(audio)})
        segs = tuple(Segment(i * 4.0, i * 4.0 + 3.5, t) for i, t in enumerate(self.texts))
        return Transcript("".join(self.texts), "zh", len(audio) / 16000, segs, 0.1)


class DroppedJobs:
    """A queue whose process 'dies' before running anything."""

    def submit(self, fn, *args) -> None:
        pass


def upload(client, services, user, path: Path | None = None, *, data: bytes | None = None, customer="c_a1"):
    body = path.read_bytes() if path is not None else data
    return client.post(
        "/api/memos",
        files={"file": ("voice.bin", body, "application/octet-stream")},
        data={"customer_id": customer},
        headers=token_for(services, user),
    )


def finished(client, services, user, memo_id: str) -> dict:
    assert services.jobs.wait_idle(timeout=300)  # Whisper on 2 busy cores
    response = client.get(f"/api/memos/{memo_id}", headers=token_for(services, user))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.models
@pytest.mark.parametrize("name", ["speech.m4a", "speech_wecom.silk", "speech_nb.amr"])
def test_a_real_recording_becomes_transcript_visit_record_and_draft_visit_log(
    crm_services, client_for, whisper, name
):
    crm_services.provide("transcriber", whisper)
    client = client_for(crm_services)

    response = upload(client, crm_services, "rep_a", AUDIO / name)
    assert response.status_code == 202
    memo_id = response.json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    assert memo["status"] == "done", memo["error"]
    assert memo["transcript"]["text"] and memo["transcript"]["segments"]
    assert any(
        w in memo["transcript"]["text"] for w in ("报价", "拜访", "客户")
    )  # espeak speech, 8 kHz AMR-NB
    first = memo["transcript"]["segments"][0]
    assert first["locator"].count(":") == 2 and first["end"] > first["start"]
    record = memo["visit_record"]
    assert record["customer"]["id"] == "c_a1" and record["mode"] == "offline"
    assert record["transcription"]["language"] == "zh"
    draft = memo["draft"]
    assert draft["op"] == "log_visit"
    assert draft["fields"]["customer_id"] == "c_a1" and draft["fields"]["memo_id"] == memo_id
    assert draft["fields"]["user_id"] == "rep_a"
    for suggestion in memo["suggestions"]:  # only suggestions that cite this memo
        assert any(c["kind"] == "memo" and c["ref"] == memo_id for c in suggestion["citations"])


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "empty", "为空"),
        ((AUDIO / "speech.m4a").read_bytes()[:300], "corrupt", "损坏"),  # an interrupted upload
        (b"just some text, not audio at all" * 10, "unsupported_format", "无法识别"),
        ((AUDIO / "silence.wav").read_bytes(), "silent", "没有检测到声音"),
    ],
)
def test_bad_uploads_are_kept_and_the_memo_fails_with_a_chinese_error(
    crm_services, client_for, data, code, words
):
    transcriber = ScriptedTranscriber("不应被调用")
    crm_services.provide("transcriber", transcriber)
    client = client_for(crm_services)

    response = upload(client, crm_services, "rep_a", data=data)
    assert response.status_code == 202
    memo = finished(client, crm_services, "rep_a", response.json()["memo_id"])

    assert memo["status"] == "failed"
    assert memo["error"]["code"] == code and words in memo["error"]["message"]
    assert memo["visit_record"] is None and memo["draft"] is None
    assert transcriber.calls == []
    kept = list((crm_services.settings.home / "uploads").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == data and kept[0].name.startswith(memo["memo_id"])


def test_an_oversized_upload_is_refused_with_413_and_nothing_is_stored(monkeypatch, tmp_path, client_for):
    monkeypatch.setenv("COPILOT_MAX_UPLOAD_BYTES", "10000")
    services = build_container(Settings())
    CRMImporter(services.engine, services.local_crm, services.users).import_file(DATA / "crm_small.json")
    client = client_for(services)

    response = upload(client, services, "rep_a", AUDIO / "speech.m4a")

    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "payload_too_large" and "文件过大" in body["detail"] and body["request_id"]
    assert not (services.settings.home / "uploads").exists() or not any(
        (services.settings.home / "uploads").iterdir()
    )


def test_uploads_are_scoped_to_the_reps_own_customers(crm_services, client_for):
    client = client_for(crm_services)
    wav = AUDIO / "speech_8k.wav"
    hidden = upload(client, crm_services, "rep_a", wav, customer="c_b1")  # another team's: as if missing
    assert hidden.status_code == 404 and hidden.json()["error"] == "customer_not_found"
    missing = upload(client, crm_services, "rep_a", wav, customer="c_nope")
    assert missing.status_code == 404 and "不存在" in missing.json()["detail"]
    anonymous = client.post(
        "/api/memos", files={"file": ("a.wav", wav.read_bytes())}, data={"customer_id": "c_a1"}
    )
    assert anonymous.status_code == 401
    no_file = client.post(
        "/api/memos", data={"customer_id": "c_a1"}, headers=token_for(crm_services, "rep_a")
    )
    assert no_file.status_code == 422


def test_a_memo_is_visible_to_its_uploader_and_their_manager_only(crm_services, client_for):
    crm_services.provide("transcriber", ScriptedTranscriber("今天见了客户，客户希望下周看到方案。"))
    client = client_for(crm_services)
    memo_id = upload(client, crm_services, "rep_a", AUDIO / "speech_8k.wav").json()["memo_id"]
    assert finished(client, crm_services, "rep_a", memo_id)["status"] == "done"

    def status(user):
        return client.get(f"/api/memos/{memo_id}", headers=token_for(crm_services, user)).status_code

    assert status("mgr_a") == 200
    assert status("admin") == 200
    assert status("rep_a2") == 404  # same team, but not theirs: the same answer as a missing memo
    assert status("rep_b") == 404
    missing = client.get("/api/memos/memo_nope", headers=token_for(crm_services, "rep_a"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_the_transcriber_hears_the_crm_names_as_hotwords(crm_services, client_for):
    transcriber = ScriptedTranscriber("华星这边需要下周三之前出方案。")
    crm_services.provide("transcriber", transcriber)
    client = client_for(crm_services)
    memo_id = upload(client, crm_services, "rep_a", AUDIO / "speech_8k.wav").json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    assert memo["status"] == "done"
    assert "华星电子" in transcriber.calls[0]["hotwords"]
    assert memo["visit_record"]["customer"]["mentioned_as"] == "华星"


def test_an_upload_survives_a_restart_mid_processing_and_completes_afterwards(crm_services):
    crm_services.provide("jobs", DroppedJobs())
    with TestClient(create_app(crm_services)) as first:
        memo_id = upload(first, crm_services, "rep_a", AUDIO / "speech_wb.amr").json()["memo_id"]
    # The process died: the row says queued, the upload is on disk.

    restarted = build_container(Settings())
    restarted.provide("kb", None)
    restarted.provide("transcriber", ScriptedTranscriber("客户担心交期太长，我明天把排期表发过去。"))
    with TestClient(create_app(restarted)) as client:  # start-up re-queues pending memos
        memo = finished(client, restarted, "rep_a", memo_id)

    assert memo["status"] == "done"
    record = memo["visit_record"]
    assert [o["type"] for o in record["objections"]] == ["交付"]
    assert record["next_steps"][0]["due"] is not None


def test_suggestions_produced_from_the_memo_cite_its_segments(crm_services, client_for):
    crm_services.provide("transcriber", ScriptedTranscriber(
        "今天见了华星的采购，对方说我们的报价太贵了，要求打八五折。", "海拓那边报价便宜百分之二十，我下周三之前把折扣申请提交上去。"
    ))  # fmt: skip
    client = client_for(crm_services)
    memo_id = upload(client, crm_services, "rep_a", AUDIO / "speech_8k.wav").json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    assert memo["status"] == "done" and memo["suggestions_note"] is None
    segments = {s["locator"]: s["text"] for s in memo["transcript"]["segments"]}
    for suggestion in memo["suggestions"]:
        memo_citations = [c for c in suggestion["citations"] if c["kind"] == "memo"]
        assert memo_citations and all(c["ref"] == memo_id for c in memo_citations)
        assert all(c["quote"] in segments.get(c["locator"], "") for c in memo_citations)


def _memo_visits(services, memo_id: str) -> list:
    snapshot = services.crm.get_customer("c_a1")
    return [v for v in snapshot.visits if v.memo_id == memo_id]


def _done_memo(client, services) -> str:
    services.provide("transcriber", ScriptedTranscriber(
        "今天见了华星的采购，对方说我们的报价太贵了。", "我下周三之前把折扣申请提交上去。"
    ))  # fmt: skip
    memo_id = upload(client, services, "rep_a", AUDIO / "speech_8k.wav").json()["memo_id"]
    assert finished(client, services, "rep_a", memo_id)["status"] == "done"
    return memo_id


def test_confirming_the_visit_log_twice_writes_one_crm_visit(crm_services, client_for):
    client = client_for(crm_services)
    memo_id = _done_memo(client, crm_services)
    before = client.get(f"/api/memos/{memo_id}", headers=token_for(crm_services, "rep_a")).json()
    assert before["confirmation"] == {"status": "unconfirmed", "edited": False, "ref": None}
    assert _memo_visits(crm_services, memo_id) == []

    first = client.post(f"/api/memos/{memo_id}/confirm", headers=token_for(crm_services, "rep_a"))
    again = client.post(f"/api/memos/{memo_id}/confirm", json={"fields": {"notes": "改过"}},
                        headers=token_for(crm_services, "rep_a"))  # fmt: skip

    assert first.status_code == 200 and again.status_code == 200, (first.text, again.text)
    confirmation = first.json()["confirmation"]
    assert confirmation["status"] == "delivered" and confirmation["edited"] is False
    assert confirmation["ref"]["kind"] == "visit"
    assert again.json()["confirmation"]["ref"] == confirmation["ref"]  # the first confirmation stands
    visits = _memo_visits(crm_services, memo_id)
    assert len(visits) == 1
    assert visits[0].notes == before["draft"]["fields"]["notes"] and "报价" in visits[0].notes
    shown = client.get(f"/api/memos/{memo_id}", headers=token_for(crm_services, "rep_a")).json()
    assert (
        shown["confirmation"]["status"] == "delivered" and shown["confirmation"]["ref"] == confirmation["ref"]
    )


def test_the_rep_may_edit_the_visit_log_before_confirming(crm_services, client_for):
    client = client_for(crm_services)
    memo_id = _done_memo(client, crm_services)
    edits = {
        "date": "2026-03-02",
        "notes": "需求：八五折。下一步：周三前提交折扣申请。",
        "contacts": ["王磊"],
    }

    response = client.post(f"/api/memos/{memo_id}/confirm", json={"fields": edits},
                           headers=token_for(crm_services, "rep_a"))  # fmt: skip

    assert response.status_code == 200, response.text
    confirmation = response.json()["confirmation"]
    assert confirmation["edited"] is True and set(confirmation["edited_fields"]) >= {"date", "notes"}
    (visit,) = _memo_visits(crm_services, memo_id)
    assert (visit.date, visit.notes) == ("2026-03-02", edits["notes"])
    assert visit.user_id == "rep_a"
    bad = client.post(f"/api/memos/{memo_id}/confirm", json={"fields": {"customer_id": "c_b1"}},
                      headers=token_for(crm_services, "rep_a"))  # fmt: skip
    assert bad.status_code == 422 and "不能修改" in bad.json()["detail"]


@pytest.mark.parametrize("user", ["rep_b", "rep_a2", "mgr_a"])
def test_only_the_uploader_confirms_and_others_write_nothing(crm_services, client_for, user):
    client = client_for(crm_services)
    memo_id = _done_memo(client, crm_services)

    response = client.post(f"/api/memos/{memo_id}/confirm", headers=token_for(crm_services, user))

    if user == "mgr_a":  # sees the memo, but does not confirm for the rep
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
    else:  # may not see it: the same 404 as a missing memo
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert _memo_visits(crm_services, memo_id) == []
    shown = client.get(f"/api/memos/{memo_id}", headers=token_for(crm_services, "rep_a")).json()
    assert shown["confirmation"]["status"] == "unconfirmed"
    missing = client.post("/api/memos/memo_nope/confirm", headers=token_for(crm_services, "rep_a"))
    assert missing.status_code == 404


def test_a_failed_memo_cannot_be_confirmed(crm_services, client_for):
    crm_services.provide("transcriber", ScriptedTranscriber("不应被调用"))
    client = client_for(crm_services)
    memo_id = upload(client, crm_services, "rep_a", data=b"").json()["memo_id"]
    assert finished(client, crm_services, "rep_a", memo_id)["status"] == "failed"

    response = client.post(f"/api/memos/{memo_id}/confirm", headers=token_for(crm_services, "rep_a"))

    assert response.status_code == 409 and "尚未处理完成" in response.json()["detail"]
    assert _memo_visits(crm_services, memo_id) == []


# -- the KB dictionary as hotwords, the embedder for objection typing ---------------------------------


def _kb_with_dictionary(services, embedder, tmp_path):
    """A real KnowledgeBase on the services' database: battlecards (one for team B only), a product
    sheet, a stored dictionary term."""
    from knowledge_base.base import KnowledgeBase

    docs = tmp_path / "kbdocs"
    docs.mkdir()
    (docs / "haituo.md").write_text(
        "---\ntitle: 竞品攻防卡：海拓物联\ntype: battlecard\n---\n# 海拓物联\n\n海拓的传感器寿命两年，我们质保五年。\n",
        encoding="utf-8",
    )
    (docs / "sensor.md").write_text(
        "---\ntitle: 无线振动传感器产品手册\ntype: product\nproduct: 衡测VS200\n---\n# 规格\n\n续航五年，防护等级 IP67。\n",
        encoding="utf-8",
    )
    (docs / "shugen.md").write_text(
        "---\ntitle: 竞品攻防卡：树根互联\ntype: battlecard\nvisibility: [t_b]\n---\n# 树根互联\n\n乙组专用。\n",
        encoding="utf-8",
    )
    kb = KnowledgeBase(engine=services.engine, embedder=embedder, chroma_path=tmp_path / "chroma")
    kb.ingest([docs])
    kb.add_terms(["云边网关"])
    return kb


@pytest.mark.models
def test_hotwords_add_the_kb_dictionary_after_the_customers_own_names(crm_services, embedder, tmp_path):
    kb = _kb_with_dictionary(crm_services, embedder, tmp_path)
    context = crm_services.memos.context_for("c_a1", "rep_a")

    words = memo_hotwords(context, kb, visible_teams={"t_a"})
    assert words[:4] == ["华星电子", "华星", "张总", "刘工"]  # the customer's own names first
    assert (
        words.index("智云科技") < words.index("海拓物联") < words.index("衡测VS200") < words.index("云边网关")
    )
    assert len(words) == len(set(words)) and "树根互联" not in words  # team B's battlecard
    assert "树根互联" in memo_hotwords(context, kb, visible_teams=None)
    assert memo_hotwords(context, kb, visible_teams={"t_a"}, limit=5) == words[:5]
    # The catalogue alone (the KB not loaded in this process) gives the same words.
    assert memo_hotwords(context, kb.catalog, visible_teams={"t_a"}) == words
    assert memo_hotwords(context, None) == ["华星电子", "华星", "张总", "刘工", "智云科技"]

    from knowledge_base.catalog import kb_terms

    kb_terms.drop(crm_services.engine)  # a KB that cannot be read costs its words, never the memo
    assert memo_hotwords(context, kb) == memo_hotwords(context, None)


@pytest.mark.models
def test_the_pipeline_hears_kb_names_without_loading_the_kb_or_the_embedder(crm_services, embedder, tmp_path):
    _kb_with_dictionary(crm_services, embedder, tmp_path)  # ingested earlier, e.g. by `copilot kb ingest`
    crm_services.forget("kb")  # this process has not loaded the KB
    transcriber = ScriptedTranscriber("华星的采购对这个价不认可。", "我明天把新报价发过去。")
    crm_services.provide("transcriber", transcriber)
    pipeline = crm_services.memos
    pipeline.suggest = None  # suggestions would load the KB; they are not what this test is about
    user = crm_services.users.get("rep_a")
    memo_id = pipeline.accept(user, "c_a1", (AUDIO / "speech_8k.wav").read_bytes())
    record = pipeline.process(memo_id)["record"]

    hotwords = transcriber.calls[0]["hotwords"]
    assert hotwords[:2] == ["华星电子", "华星"] and {"海拓物联", "衡测VS200", "云边网关"} <= set(hotwords)
    assert "树根互联" not in hotwords  # rep_a is in team A
    assert not crm_services.is_loaded("kb") and not crm_services.is_loaded("embedder")  # memos stay fast
    assert [o.type for o in record.objections] == ["其他"]  # no embedder loaded: the lexicons alone

    crm_services.provide("embedder", embedder)  # once loaded (chat, KB search), memos use it
    memo_id = pipeline.accept(user, "c_a1", (AUDIO / "speech_8k.wav").read_bytes())
    record = pipeline.process(memo_id)["record"]
    assert [o.type for o in record.objections] == ["价格"]
