import json

from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.main import app

runner = CliRunner()


def _enqueue(key: str) -> None:
    from copilot.features.writeback.outbox import enqueue

    with common.services().engine.begin() as conn:
        enqueue(conn, "create_task", {"customer_id": "c1", "title": "回访"}, key, user_id="rep_a")


def test_outbox_list_and_cancel_as_json():
    _enqueue("k1")
    _enqueue("k2")

    listed = json.loads(runner.invoke(app, ["outbox", "list", "--json"]).stdout)
    ids = [item["id"] for item in listed["items"]]
    cancelled = runner.invoke(app, ["outbox", "cancel", str(ids[0]), "--json"])
    after = json.loads(runner.invoke(app, ["outbox", "list", "--status", "pending", "--json"]).stdout)

    assert len(ids) == 2 and listed["counts"].get("pending") == 2
    assert cancelled.exit_code == 0 and json.loads(cancelled.stdout)["cancelled"] == [ids[0]]
    assert [i["id"] for i in after["items"]] == [ids[1]]
