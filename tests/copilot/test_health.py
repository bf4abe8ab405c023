def test_healthz_reports_db_and_model_status(services, client_for):
    client = client_for(services)

    r = client.get("/healthz")

    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["db"] == "ok"
    assert body["models"]["llm"] == "offline"
    assert body["vector_store"]["status"] == "not_loaded"


def test_metrics_are_prometheus_text_with_route_templates(crm_services, client_for):
    client = client_for(crm_services)
    client.get("/api/customers/c_a1")  # 401, still counted

    text = client.get("/metrics").text

    assert "# TYPE copilot_http_requests_total counter" in text
    assert 'route="/api/customers/{customer_id}"' in text and 'status="401"' in text
    assert "c_a1" not in text  # raw paths (ids) never become labels


def test_errors_carry_a_request_id_header_and_body(services, client_for):
    client = client_for(services)
    r = client.get("/api/nothing-here", headers={"x-request-id": "req-123"})
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "detail": "资源不存在。", "request_id": "req-123"}
    assert r.headers["x-request-id"] == "req-123"


def test_healthz_says_whisper_is_loaded_only_while_the_model_is_in_memory(services, client_for, tmp_path):
    from copilot.voice.transcribe import WhisperTranscriber

    whisper = WhisperTranscriber(tmp_path)  # built lazily: nothing loaded yet
    services.provide("transcriber", whisper)
    client = client_for(services)
    assert client.get("/healthz").json()["models"]["whisper"] == "not_loaded"
    whisper._model, whisper.loads = object(), 1  # as after a memo
    assert client.get("/healthz").json()["models"]["whisper"] == "loaded"
    assert whisper.release()
    assert client.get("/healthz").json()["models"]["whisper"] == "released"
