"""WeCom / DingTalk callback crypto: the platforms' published vectors, every negative case of
../shared/vectors/README.md, and hypothesis round trips.

Known-answer vectors are read from ``<repo>/../shared/vectors/wecom_dingtalk.json`` (never copied
into the repository); each entry's ``source`` field says where it was published:

- ``wecom_doc_90968_*``, ``wecom_doc_verify_url``: WeCom developer docs, 加解密方案说明 (doc 90968);
- ``wecom_official_sample_*``: Tencent's official sample, sbzhu/weworkapi_python callback(_json)/Sample.py;
- ``dingtalk_event_check_url``: open-dingtalk/DingTalk-Callback-Crypto, DingCallbackCrypto3.py;
- ``wecom_wechatpy_*`` (``official: false``): data from wechatpy tests/test_crypto.py (MIT);
- ``dingtalk_robot_http_sign`` (``official: false``): computed from the documented algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from connectors.channels.crypto import (
    DINGTALK_ROBOT_WINDOW_MS,
    ERROR_CODES,
    CryptoError,
    EncryptedMessage,
    MessageCrypto,
    check_timestamp,
    dingtalk_robot_sign,
    verify_dingtalk_robot,
)

VECTORS_FILE = Path(__file__).resolve().parents[3].parent / "shared" / "vectors" / "wecom_dingtalk.json"
VECTORS: dict[str, dict[str, str]] = (
    json.loads(VECTORS_FILE.read_text("utf-8")) if VECTORS_FILE.is_file() else {}
)
_ABSENT = pytest.param(None, marks=pytest.mark.skip(reason=f"平台测试向量文件不存在：{VECTORS_FILE}"))


def entries(*needed: str, any_of: tuple[str, ...] = ()) -> list:
    """Vector names having every key of `needed` (and one of `any_of`), or one skipped param."""
    names = [
        name
        for name, v in sorted(VECTORS.items())
        if all(k in v for k in needed) and (not any_of or any(k in v for k in any_of))
    ]
    return [pytest.param(name, id=name) for name in names] or [_ABSENT]


def crypto_for(v: dict[str, str], **override: str) -> MessageCrypto:
    args = {"token": v["token"], "encoding_aes_key": v["encoding_aes_key"], "receive_id": v["receive_id"]}
    return MessageCrypto(**(args | override))


def ciphertext_of(v: dict[str, str]) -> str:
    return v["encrypt"] if "encrypt" in v else v["echostr"]


# An app of our own for the negative cases that need hand-made plaintexts.
TOKEN, AES_KEY, RECEIVE_ID = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7"
APP = MessageCrypto(TOKEN, AES_KEY, RECEIVE_ID)


def seal_raw(plaintext: bytes, key: str = AES_KEY) -> str:
    """AES-256-CBC over exactly these bytes (no padding added): an independent encryptor for bad inputs."""
    raw = base64.b64decode(key + "=")
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def open_signed(crypto: MessageCrypto, encrypt: str, timestamp: str = "1409659813", nonce: str = "n1") -> str:
    """Decrypt with a correct signature, so that the layers behind the signature check are reached."""
    signature = crypto.signature(timestamp, nonce, encrypt)
    return crypto.decrypt(encrypt, signature=signature, timestamp=timestamp, nonce=nonce)


def framed(message: bytes, receive_id: bytes = RECEIVE_ID.encode(), *, length: int | None = None) -> bytes:
    length = len(message) if length is None else length
    return b"R" * 16 + length.to_bytes(4, "big") + message + receive_id


def pkcs7(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


# --- known answers -------------------------------------------------------------------------------


def test_every_vector_is_exercised_by_a_known_answer_test():
    if not VECTORS:
        pytest.skip(f"平台测试向量文件不存在：{VECTORS_FILE}")
    for name, v in VECTORS.items():
        assert {"encrypt", "echostr", "sign"} & v.keys(), name


@pytest.mark.parametrize("name", entries("msg_signature"))
def test_signature_matches_published_vector(name):
    v = VECTORS[name]
    crypto = crypto_for(v)
    assert crypto.signature(v["timestamp"], v["nonce"], ciphertext_of(v)) == v["msg_signature"]
    crypto.verify(v["msg_signature"], v["timestamp"], v["nonce"], ciphertext_of(v))


@pytest.mark.parametrize("name", entries("msg_signature", "encrypt"))
def test_decrypt_returns_published_plaintext(name):
    v = VECTORS[name]
    text = crypto_for(v).decrypt(
        v["encrypt"], signature=v["msg_signature"], timestamp=v["timestamp"], nonce=v["nonce"]
    )
    assert text == v["plaintext"]


@pytest.mark.parametrize("name", entries("msg_signature", "echostr"))
def test_verify_url_returns_published_echo(name):
    v = VECTORS[name]
    assert (
        crypto_for(v).verify_url(v["msg_signature"], v["timestamp"], v["nonce"], v["echostr"])
        == v["plaintext"]
    )


@pytest.mark.parametrize("name", entries("random16", "plaintext", any_of=("encrypt", "echostr")))
def test_encrypt_with_published_random_reproduces_ciphertext_and_signature(name):
    v = VECTORS[name]
    sealed = crypto_for(v).encrypt(
        v["plaintext"], nonce=v["nonce"], timestamp=v["timestamp"], random16=v["random16"].encode()
    )
    assert sealed == EncryptedMessage(ciphertext_of(v), v["msg_signature"], v["timestamp"], v["nonce"])


@pytest.mark.parametrize("name", entries("app_secret", "timestamp_ms", "sign"))
def test_dingtalk_robot_sign_matches_vector(name):
    v = VECTORS[name]
    assert dingtalk_robot_sign(v["app_secret"], v["timestamp_ms"]) == v["sign"]
    assert dingtalk_robot_sign(v["app_secret"], int(v["timestamp_ms"])) == v["sign"]
    verify_dingtalk_robot(v["app_secret"], v["timestamp_ms"], v["sign"], now_ms=int(v["timestamp_ms"]) + 1000)


@pytest.mark.parametrize("name", entries("app_secret", "timestamp_ms", "sign"))
def test_dingtalk_robot_sign_follows_the_documented_formula(name):
    import hmac

    v = VECTORS[name]
    mac = hmac.new(
        v["app_secret"].encode(), f"{v['timestamp_ms']}\n{v['app_secret']}".encode(), hashlib.sha256
    )
    assert base64.b64encode(mac.digest()).decode() == v["sign"]


def test_official_json_sample_decrypts_but_its_text_is_not_json():
    """Tencent's callback_json sample decrypts to invalid JSON: decryption succeeds, parsing fails."""
    v = VECTORS.get("wecom_official_sample_json") or pytest.skip("向量 wecom_official_sample_json 不存在")
    text = crypto_for(v).decrypt(
        v["encrypt"], signature=v["msg_signature"], timestamp=v["timestamp"], nonce=v["nonce"]
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


# --- negative cases named by the vectors README ---------------------------------------------------


@pytest.mark.parametrize("name", entries("msg_signature", any_of=("encrypt", "echostr")))
def test_wrong_nonce_is_a_bad_signature(name):
    v = VECTORS[name]
    crypto, encrypt = crypto_for(v), ciphertext_of(v)
    with pytest.raises(CryptoError) as caught:
        crypto.decrypt(
            encrypt, signature=v["msg_signature"], timestamp=v["timestamp"], nonce=v["nonce"] + "0"
        )
    assert caught.value.code == "bad_signature"
    with pytest.raises(CryptoError, match=ERROR_CODES["bad_signature"]):
        crypto.verify_url(v["msg_signature"], v["timestamp"], v["nonce"] + "0", encrypt)


def test_wechatpy_signature_with_nonce_437374424_fails():
    v = VECTORS.get("wecom_wechatpy_check_signature") or pytest.skip(
        "向量 wecom_wechatpy_check_signature 不存在"
    )
    with pytest.raises(CryptoError) as caught:
        crypto_for(v).verify(v["msg_signature"], v["timestamp"], "437374424", v["echostr"])
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize("name", entries("msg_signature", any_of=("encrypt", "echostr")))
def test_receive_id_mismatch_is_rejected_after_the_signature_passes(name):
    v = VECTORS[name]
    for other in ("", v["receive_id"] + "x", v["receive_id"][:-1], "ding000000000000"):
        with pytest.raises(CryptoError) as caught:
            crypto_for(v, receive_id=other).decrypt(
                ciphertext_of(v), signature=v["msg_signature"], timestamp=v["timestamp"], nonce=v["nonce"]
            )
        assert caught.value.code == "receive_id_mismatch"


def test_empty_receive_id_of_the_wecom_ai_bot_round_trips_and_is_enforced():
    bot = MessageCrypto(TOKEN, AES_KEY, "")
    sealed = bot.encrypt('{"msgtype":"text"}', nonce="n", timestamp="1")
    assert (
        bot.decrypt(sealed.encrypt, signature=sealed.signature, timestamp="1", nonce="n")
        == '{"msgtype":"text"}'
    )
    with pytest.raises(CryptoError, match="receive id"):
        open_signed(APP, sealed.encrypt)


@pytest.mark.parametrize("pad_byte", [0, 33, 255])
def test_pad_byte_out_of_range_is_bad_padding(pad_byte):
    body = framed(b"hello")
    body += b"\x00" * (-(len(body) + 1) % 32) + bytes([pad_byte])
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, seal_raw(body))
    assert caught.value.code == "bad_padding"


@pytest.mark.parametrize("pad_byte", [33, 48, 64])
def test_consistent_padding_longer_than_32_bytes_is_bad_padding(pad_byte):
    body = framed(b"hello")
    body += b"\x00" * (-(len(body) + pad_byte) % 16) + bytes([pad_byte]) * pad_byte
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, seal_raw(body))
    assert caught.value.code == "bad_padding"


def test_inconsistent_pad_bytes_are_bad_padding():
    padded = bytearray(pkcs7(framed(b"hello")))
    assert padded[-1] > 1
    padded[-2] ^= 0x01
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, seal_raw(bytes(padded)))
    assert caught.value.code == "bad_padding"


def test_pad_of_a_whole_block_of_32_is_accepted():
    body = framed(b"x" * (64 - 16 - 4 - len(RECEIVE_ID)))
    assert len(body) % 32 == 0
    assert open_signed(APP, seal_raw(pkcs7(body))) == "x" * (64 - 16 - 4 - len(RECEIVE_ID))
    assert pkcs7(body)[-1] == 32


@pytest.mark.parametrize("declared", [5 + len(RECEIVE_ID) + 1, 5 + len(RECEIVE_ID) + 1000, 2**31, 2**32 - 1])
def test_declared_length_larger_than_the_buffer_is_bad_length(declared):
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, seal_raw(pkcs7(framed(b"hello", length=declared))))
    assert caught.value.code == "bad_length"


@pytest.mark.parametrize("content", [b"", b"\x00", b"\x00\x00\x00"])
def test_plaintext_too_short_for_a_length_field_is_bad_length(content):
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, seal_raw(pkcs7(b"R" * 16 + content)))
    assert caught.value.code == "bad_length"


def test_declared_length_that_swallows_the_receive_id_is_a_receive_id_mismatch():
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, seal_raw(pkcs7(framed(b"hello", length=5 + len(RECEIVE_ID)))))
    assert caught.value.code == "receive_id_mismatch"


def test_message_that_is_not_utf8_is_bad_text():
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, seal_raw(pkcs7(framed(b"\xff\xfe\xc3"))))
    assert caught.value.code == "bad_text"


@pytest.mark.parametrize("name", entries("msg_signature", "echostr"))
def test_echostr_whose_plus_was_form_decoded_into_a_space_is_accepted(name):
    v = VECTORS[name]
    if "+" not in v["echostr"]:
        pytest.skip("这个向量的 echostr 不含 '+'")
    spaced = v["echostr"].replace("+", " ")
    crypto = crypto_for(v)
    assert crypto.verify_url(v["msg_signature"], v["timestamp"], v["nonce"], spaced) == v["plaintext"]
    with pytest.raises(CryptoError, match=ERROR_CODES["bad_signature"]):
        crypto.verify_url(v["msg_signature"], v["timestamp"], v["nonce"] + "0", spaced)


def test_echostr_from_the_published_query_string_works_decoded_either_way():
    v = VECTORS.get("wecom_doc_verify_url") or pytest.skip("向量 wecom_doc_verify_url 不存在")
    query = f"msg_signature={v['msg_signature']}&timestamp={v['timestamp']}&nonce={v['nonce']}"
    params = dict(parse_qsl(f"{query}&echostr={v['echostr_urlencoded']}"))
    assert params["echostr"] == v["echostr"]
    assert crypto_for(v).verify_url(**params) == v["plaintext"]
    # A proxy that forwarded the raw '+' makes the form decoder turn it into a space.
    mangled = dict(parse_qsl(f"{query}&echostr={v['echostr_urlencoded'].replace('%2B', '+')}"))
    assert " " in mangled["echostr"]
    assert crypto_for(v).verify_url(**mangled) == v["plaintext"]


def test_same_msg_id_delivered_three_times_decrypts_identically_so_dedup_can_key_on_it():
    """The crypto is stateless; the adapter dedups on the MsgId, which must be stable across retries."""
    v = VECTORS.get("wecom_doc_90968_message") or pytest.skip("向量 wecom_doc_90968_message 不存在")
    crypto = crypto_for(v)
    texts = {
        crypto.decrypt(v["encrypt"], signature=v["msg_signature"], timestamp=v["timestamp"], nonce=v["nonce"])
        for _ in range(3)
    }
    assert len(texts) == 1
    assert "<MsgId>4561255354251345929</MsgId>" in texts.pop()


# --- malformed ciphertexts and keys ---------------------------------------------------------------


def test_truncated_ciphertext_is_rejected():
    sealed = APP.encrypt("你好，客户", nonce="n", timestamp="1")
    for cut in (sealed.encrypt[:-4], sealed.encrypt[:-24], sealed.encrypt[:24]):
        with pytest.raises(CryptoError) as caught:
            open_signed(APP, cut)
        assert caught.value.code in {"bad_ciphertext", "bad_padding", "bad_length"}
    with pytest.raises(CryptoError) as caught:
        APP.decrypt(sealed.encrypt[:-4], signature=sealed.signature, timestamp="1", nonce="n")
    assert caught.value.code == "bad_signature"


@pytest.mark.parametrize(
    "encrypt",
    ["", "not base64!", "QUJD", "QUJD\n", "QUJDRA=", "５５５５", base64.b64encode(b"x" * 17).decode()],
)
def test_malformed_ciphertext_is_bad_ciphertext(encrypt):
    with pytest.raises(CryptoError) as caught:
        open_signed(APP, encrypt)
    assert caught.value.code == "bad_ciphertext"


@pytest.mark.parametrize(
    "key",
    [
        "",
        AES_KEY[:-1],
        AES_KEY + "A",
        AES_KEY[:-1] + "!",
        AES_KEY[:-1] + "=",
        base64.b64encode(b"k" * 32).decode(),
        "全" * 43,
    ],
)
def test_bad_encoding_aes_key_is_rejected_at_construction(key):
    with pytest.raises(CryptoError) as caught:
        MessageCrypto(TOKEN, key, RECEIVE_ID)
    assert caught.value.code == "bad_aes_key"
    assert "EncodingAESKey" in str(caught.value)


# --- encryption details ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(0, 70))
def test_padding_fills_to_32_byte_blocks_with_1_to_32_bytes(size):
    sealed = APP.encrypt("a" * size, nonce="n", timestamp="1", random16=b"0" * 16)
    raw = base64.b64decode(sealed.encrypt)
    unpadded = 16 + 4 + size + len(RECEIVE_ID)
    assert len(raw) % 32 == 0
    assert 1 <= len(raw) - unpadded <= 32
    assert open_signed(APP, sealed.encrypt, "1", "n") == "a" * size


def test_encrypt_defaults_to_fresh_random_nonce_and_current_timestamp():
    before = int(time.time())
    first, second = APP.encrypt("同一条消息"), APP.encrypt("同一条消息")
    assert first.encrypt != second.encrypt
    assert first.nonce != second.nonce
    assert before <= int(first.timestamp) <= int(time.time())
    assert (
        APP.decrypt(first.encrypt, signature=first.signature, timestamp=first.timestamp, nonce=first.nonce)
        == "同一条消息"
    )


@pytest.mark.parametrize("random16", [b"", b"x" * 15, b"x" * 17])
def test_encrypt_refuses_a_random_prefix_that_is_not_16_bytes(random16):
    with pytest.raises(ValueError, match="16"):
        APP.encrypt("hi", random16=random16)


def test_signature_sorts_its_four_parts_before_hashing():
    expected = hashlib.sha1("".join(sorted([TOKEN, "3", "2", "1"])).encode()).hexdigest()
    assert APP.signature("3", "2", "1") == expected
    assert APP.signature(3, "2", "1") == expected


def test_every_error_code_has_a_chinese_message():
    for code, message in ERROR_CODES.items():
        error = CryptoError(code)
        assert (error.code, error.message, str(error)) == (code, message, message)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in message)
    assert CryptoError("bad_signature", "自定义").message == "自定义"


# --- timestamps and the DingTalk robot header ------------------------------------------------------


def test_check_timestamp_accepts_the_window_edges_in_both_directions():
    assert check_timestamp("1000", now=1300, window=300) == 1000
    assert check_timestamp(1600, now=1300, window=300) == 1600


@pytest.mark.parametrize("timestamp", ["999", "1601", "0"])
def test_check_timestamp_outside_the_window_is_expired(timestamp):
    with pytest.raises(CryptoError) as caught:
        check_timestamp(timestamp, now=1300, window=300)
    assert caught.value.code == "expired_timestamp"


@pytest.mark.parametrize("timestamp", ["", "12a", "-5", " 1300", "1_300", "1300.0", "１３００", "9" * 21, -1])
def test_check_timestamp_rejects_malformed_values(timestamp):
    with pytest.raises(CryptoError) as caught:
        check_timestamp(timestamp, now=1300, window=300)
    assert caught.value.code == "bad_timestamp"


def test_dingtalk_robot_timestamp_older_than_an_hour_is_expired():
    ts = 1_700_000_000_000
    sign = dingtalk_robot_sign("secret", ts)
    verify_dingtalk_robot("secret", str(ts), sign, now_ms=ts + DINGTALK_ROBOT_WINDOW_MS)
    for now in (ts + DINGTALK_ROBOT_WINDOW_MS + 1, ts - DINGTALK_ROBOT_WINDOW_MS - 1):
        with pytest.raises(CryptoError) as caught:
            verify_dingtalk_robot("secret", str(ts), sign, now_ms=now)
        assert caught.value.code == "expired_timestamp"


def test_dingtalk_robot_window_is_a_parameter():
    ts = 1_700_000_000_000
    sign = dingtalk_robot_sign("secret", ts)
    with pytest.raises(CryptoError, match="时间窗口"):
        verify_dingtalk_robot("secret", ts, sign, now_ms=ts + 60_001, window_ms=60_000)
    verify_dingtalk_robot("secret", ts, sign, now_ms=ts + 60_000, window_ms=60_000)


def test_dingtalk_robot_defaults_to_the_current_clock():
    now_ms = int(time.time() * 1000)
    verify_dingtalk_robot("secret", now_ms, dingtalk_robot_sign("secret", now_ms))
    stale = now_ms - DINGTALK_ROBOT_WINDOW_MS - 60_000
    with pytest.raises(CryptoError, match="时间窗口"):
        verify_dingtalk_robot("secret", stale, dingtalk_robot_sign("secret", stale))


@pytest.mark.parametrize(
    ("secret", "sign"),
    [("other-secret", None), ("secret", ""), ("secret", "not-the-sign"), ("secret", "签名")],
)
def test_dingtalk_robot_wrong_sign_is_a_bad_signature_even_when_stale(secret, sign):
    ts = 1_700_000_000_000
    sign = dingtalk_robot_sign(secret, ts) if sign is None else sign
    for now in (ts, ts + 10 * DINGTALK_ROBOT_WINDOW_MS):
        with pytest.raises(CryptoError) as caught:
            verify_dingtalk_robot("secret", ts, sign, now_ms=now)
        assert caught.value.code == "bad_signature"


def test_dingtalk_robot_malformed_timestamp_is_bad_timestamp():
    with pytest.raises(CryptoError) as caught:
        verify_dingtalk_robot("secret", "17e11", dingtalk_robot_sign("secret", "17e11"), now_ms=0)
    assert caught.value.code == "bad_timestamp"


# --- properties -----------------------------------------------------------------------------------

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
aes_keys = st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode()[:-1])
digits = st.text("0123456789", min_size=1, max_size=13)


@given(
    message=st.text(), receive_id=st.text(), token=st.text(), key=aes_keys, timestamp=digits, nonce=st.text()
)
def test_any_message_and_receive_id_round_trip(message, receive_id, token, key, timestamp, nonce):
    crypto = MessageCrypto(token, key, receive_id)
    sealed = crypto.encrypt(message, nonce=nonce, timestamp=timestamp)
    assert (
        crypto.decrypt(sealed.encrypt, signature=sealed.signature, timestamp=timestamp, nonce=nonce)
        == message
    )
    assert crypto.verify_url(sealed.signature, timestamp, nonce, sealed.encrypt) == message


@given(message=st.text(), data=st.data())
def test_a_mutated_ciphertext_is_always_rejected(message, data):
    sealed = APP.encrypt(message, nonce="n", timestamp="1")
    at = data.draw(st.integers(0, len(sealed.encrypt) - 1))
    swap = data.draw(st.sampled_from(B64 + "= ").filter(lambda c: c != sealed.encrypt[at]))
    mutated = sealed.encrypt[:at] + swap + sealed.encrypt[at + 1 :]
    with pytest.raises(CryptoError) as caught:
        APP.decrypt(mutated, signature=sealed.signature, timestamp="1", nonce="n")
    assert caught.value.code == "bad_signature"


@given(message=st.text(), data=st.data())
def test_a_mutated_signature_is_always_rejected(message, data):
    sealed = APP.encrypt(message, nonce="n", timestamp="1")
    at = data.draw(st.integers(0, len(sealed.signature) - 1))
    swap = data.draw(st.sampled_from("0123456789abcdefABCDEF").filter(lambda c: c != sealed.signature[at]))
    mutated = sealed.signature[:at] + swap + sealed.signature[at + 1 :]
    with pytest.raises(CryptoError) as caught:
        APP.decrypt(sealed.encrypt, signature=mutated, timestamp="1", nonce="n")
    assert caught.value.code == "bad_signature"
    with pytest.raises(CryptoError):
        APP.decrypt(sealed.encrypt, signature=sealed.signature[:at], timestamp="1", nonce="n")


@given(message=st.text(), data=st.data())
def test_a_re_signed_mutated_ciphertext_never_yields_the_original_message(message, data):
    """Even past the signature (an attacker who knew the token), no bit flip goes unnoticed or unchanged."""
    raw = bytearray(base64.b64decode(APP.encrypt(message, nonce="n", timestamp="1").encrypt))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    try:
        text = open_signed(APP, base64.b64encode(bytes(raw)).decode())
    except CryptoError as error:
        assert error.code in {"bad_padding", "bad_length", "receive_id_mismatch", "bad_text"}
    else:
        assert text != message


@given(secret=st.text(), ts=st.integers(0, 10**13), data=st.data())
def test_dingtalk_robot_sign_round_trips_and_rejects_any_other_sign(secret, ts, data):
    sign = dingtalk_robot_sign(secret, ts)
    verify_dingtalk_robot(secret, ts, sign, now_ms=ts)
    other = data.draw(st.text().filter(lambda s: s != sign))
    with pytest.raises(CryptoError) as caught:
        verify_dingtalk_robot(secret, ts, other, now_ms=ts)
    assert caught.value.code == "bad_signature"
