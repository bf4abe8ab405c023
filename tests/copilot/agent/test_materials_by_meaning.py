"""Materials are chosen by meaning, not by file name: on an evaluation company whose knowledge-base files
are renamed to opaque names (doc_01.md …, the sidecars and ``supersedes`` following), a price objection
still gets the price/TCO objection document, a same-industry case (the customer's CRM industry) and the
named competitor's battlecard, and never the superseded price policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from copilot.features.crm_import import CRMImporter

COMPANY = Path(__file__).resolve().parents[3] / "evals" / "datasets" / "companies" / "kangmai_medical"
AS_OF = "2026-11-20"


def _opaque_copy(src: Path, dst: Path) -> dict[str, str]:
    """Copy ``src`` (a KB folder) into one flat folder of doc_NN.md; returns new path → old path."""
    docs = sorted(p for p in src.rglob("*.md"))
    renamed = {p.relative_to(src).as_posix(): f"doc_{i:02d}.md" for i, p in enumerate(docs, start=1)}
    dst.mkdir(parents=True)
    for p in docs:
        new = renamed[p.relative_to(src).as_posix()]
        shutil.copy(p, dst / new)
        meta = yaml.safe_load(Path(f"{p}.meta.yaml").read_text(encoding="utf-8"))
        if meta.get("supersedes"):
            meta["supersedes"] = renamed[meta["supersedes"]]
        (dst / f"{new}.meta.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True), encoding="utf-8")
    return {new: old for old, new in renamed.items()}


def test_price_objection_and_competitor_materials_are_chosen_by_type_metadata_and_retrieval(
    services, embedder, tmp_path
):
    CRMImporter(services.engine, services.local_crm, services.users).import_file(COMPANY / "crm.json")
    services.provide("embedder", embedder)
    old_of = _opaque_copy(COMPANY / "kb", tmp_path / "kb")
    services.kb.ingest([tmp_path / "kb"])
    docs = {d.path: d for d in services.kb.documents()}
    assert all(Path(p).name.startswith("doc_") for p in docs)
    services.rules_admin.draft()
    services.rules_admin.approve([], all_=True, by="test")

    user = services.users.get("u_km_mgr")
    suggestions = services.suggester.for_customer(user, "km_c05", as_of=AS_OF, store=False).suggestions
    cited = {(s.action_type, c.source) for s in suggestions for c in s.citations if c.kind == "kb"}
    cited_docs = [docs[src] for _, src in cited]
    titles = {d.title for d in cited_docs}
    sent = {docs[src] for action, src in cited if action == "send_material"}

    # the price objection: the objection document about price and total cost of ownership
    assert any(d.doc_type == "objection" and "总拥有成本" in d.title for d in sent), titles
    # a case of the customer's own CRM industry (公立医院), not another industry's
    cases = [d for d in cited_docs if d.doc_type == "case"]
    assert cases and all(d.industry == "公立医院" for d in cases), [(d.title, d.industry) for d in cases]
    # the competitor named in the memo (华影医疗): its battlecard
    assert any(d.doc_type == "battlecard" and "华影医疗" in d.title for d in cited_docs), titles
    # the superseded 2025 price policy is never cited
    cited_originals = {old_of[Path(src).name] for _, src in cited}
    assert "policies/price_discount_policy_2025.md" not in cited_originals
    assert "policies/price_discount_policy_2026.md" in {old_of[Path(p).name] for p in docs}  # both were there
