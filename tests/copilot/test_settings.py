from pathlib import Path

from copilot.settings import Settings


def test_settings_read_the_contract_env_names(monkeypatch, tmp_path):
    monkeypatch.setenv("COPILOT_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("COPILOT_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    monkeypatch.setenv("COPILOT_CHROMA_URL", "http://127.0.0.1:8001")
    monkeypatch.setenv("COPILOT_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("COPILOT_LLM_MODEL", "qwen2.5")
    monkeypatch.setenv("COPILOT_CRM", "hubspot")
    monkeypatch.setenv("COPILOT_HUBSPOT_TOKEN", "pat")
    monkeypatch.setenv("COPILOT_WECOM_AES_KEY", "k" * 43)
    monkeypatch.setenv("COPILOT_WECOM_CORP_ID", "ww1")
    monkeypatch.setenv("COPILOT_DINGTALK_APP_KEY", "dk")
    monkeypatch.setenv("COPILOT_SALESFORCE_INSTANCE_URL", "http://127.0.0.1:7")

    s = Settings()

    assert s.home == Path(tmp_path / "h")
    assert s.resolved_database_url == "postgresql+psycopg://u@127.0.0.1/db"
    assert s.chroma_url == "http://127.0.0.1:8001"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.llm.enabled and s.llm.api_key == "sk-test" and s.llm.base_url == "http://127.0.0.1:9/v1"
    assert s.llm.model == "qwen2.5"
    assert s.crm == "hubspot"
    assert s.hubspot.token == "pat" and s.hubspot.api_base == "https://api.hubapi.com"
    assert s.wecom.aes_key == "k" * 43 and s.wecom.corp_id == "ww1"
    assert s.wecom.api_base == "https://qyapi.weixin.qq.com"
    assert s.dingtalk.app_key == "dk" and s.dingtalk.oapi_base == "https://oapi.dingtalk.com"
    assert s.salesforce.instance_url == "http://127.0.0.1:7"


def test_defaults_are_embedded_and_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("COPILOT_HOME")
    monkeypatch.delenv("COPILOT_MODELS_DIR")
    monkeypatch.delenv("COPILOT_DATABASE_URL", raising=False)  # set on the PostgreSQL pass
    monkeypatch.chdir(tmp_path)

    s = Settings()

    assert s.home == Path(".copilot")
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / '.copilot' / 'copilot.db')}"
    assert s.chroma_url is None and s.redis_url is None
    assert not s.llm.enabled
    assert s.crm == "local"
    assert s.models_dir == Path(".copilot") / "models"


def test_unknown_crm_name_lists_the_valid_ones(monkeypatch):
    import pytest

    from copilot.container import ConfigError, build_container

    monkeypatch.setenv("COPILOT_CRM", "zoho")
    with pytest.raises(ConfigError, match="不支持；可选：local"):
        _ = build_container().crm


def test_llm_budgets_have_one_setting_each_and_background_paths_wait_longer(monkeypatch):
    s = Settings()
    assert s.llm.context_tokens == 4096 and s.llm.response_format == "auto"
    assert s.llm.timeouts() == {"chat": 30.0, "suggest": 120.0, "extract": 120.0}

    monkeypatch.setenv("COPILOT_LLM_TIMEOUT_S", "20")
    monkeypatch.setenv("COPILOT_LLM_EXTRACT_TIMEOUT_S", "600")
    monkeypatch.setenv("COPILOT_LLM_CHAT_TIMEOUT_S", "90")
    monkeypatch.setenv("COPILOT_LLM_CONTEXT_TOKENS", "2048")
    monkeypatch.setenv("COPILOT_LLM_RESPONSE_FORMAT", "json_object")
    s = Settings()
    assert s.llm.timeouts() == {"chat": 90.0, "suggest": 120.0, "extract": 600.0}
    assert s.llm.context_tokens == 2048 and s.llm.response_format == "json_object"
