"""WeCom (企业微信) and DingTalk (钉钉) callback crypto, plus DingTalk's robot `sign` header.

Both platforms use one scheme (WeCom doc 90968 加解密方案说明; open-dingtalk/DingTalk-Callback-Crypto):

    key       = base64decode(EncodingAESKey + "=")          # 43 characters -> 32 bytes
    plaintext = random(16) ‖ uint32_be(len(msg)) ‖ msg ‖ receive_id, PKCS#7-padded to 32-byte blocks
    encrypt   = base64(AES-256-CBC(key, iv=key[:16], plaintext))
    signature = sha1("".join(sorted([token, timestamp, nonce, encrypt]))).hexdigest()

CBC has no integrity of its own: the signature, keyed by the secret token, is what authenticates a
message, so `decrypt` always checks it before touching the ciphertext. Every failure raises
`CryptoError` with a stable `code` from `ERROR_CODES` and a Chinese message. Nothing here logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PAD_BLOCK = 32
DINGTALK_ROBOT_WINDOW_MS = 60 * 60 * 1000

ERROR_CODES: dict[str, str] = {
    "bad_signature": "签名校验失败",
    "receive_id_mismatch": "消息接收方 ID（receive id）与配置不一致",
    "bad_padding": "解密后的 PKCS#7 填充无效",
    "bad_length": "解密后的消息长度字段无效",
    "bad_aes_key": "EncodingAESKey 无效：应为 43 个 base64 字符（解码后 32 字节）",
    "bad_ciphertext": "密文不是有效的 base64，或长度不是 16 字节的整数倍",
    "bad_text": "解密后的消息不是有效的 UTF-8 文本",
    "bad_timestamp": "时间戳格式无效",
    "expired_timestamp": "时间戳超出允许的时间窗口（可能是重放请求）",
}


class CryptoError(Exception):
    """A callback failed verification or decryption; `code` is a key of `ERROR_CODES`."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or ERROR_CODES[code]
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class EncryptedMessage:
    encrypt: str
    signature: str
    timestamp: str
    nonce: str


def _same(a: str | bytes, b: str | bytes) -> bool:
    a = a.encode() if isinstance(a, str) else a
    b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a, b)


def _aes_key(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except ValueError:
        raise CryptoError("bad_aes_key") from None
    if len(encoding_aes_key) != 43 or len(key) != 32:
        raise CryptoError("bad_aes_key")
    return key


def _unpad(data: bytes) -> bytes:
    n = data[-1]
    if not 1 <= n <= PAD_BLOCK or n > len(data) or data[-n:] != bytes([n]) * n:
        raise CryptoError("bad_padding")
    return data[:-n]


class MessageCrypto:
    """Sign, encrypt and decrypt callback messages for one app (token, EncodingAESKey, receive id).

    The receive id is the CorpID (WeCom self-built app), "" (WeCom AI bot), or DingTalk's ownerKey
    (appKey, corpId or suiteKey).
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self.receive_id = receive_id
        self._key = _aes_key(encoding_aes_key)
        self._aes = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))  # contexts: one per message

    def _cipher(self) -> Cipher:
        return self._aes

    def signature(self, timestamp: str | int, nonce: str, encrypt: str) -> str:
        joined = "".join(sorted([self.token, str(timestamp), nonce, encrypt]))
        return hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324 -- SHA-1 is the platforms' choice

    def verify(self, signature: str, timestamp: str | int, nonce: str, encrypt: str) -> None:
        """Raise `CryptoError("bad_signature")` unless the signature matches (constant-time)."""
        if not _same(signature, self.signature(timestamp, nonce, encrypt)):
            raise CryptoError("bad_signature")

    def encrypt(
        self,
        message: str,
        *,
        nonce: str | None = None,
        timestamp: str | int | None = None,
        random16: bytes | None = None,
    ) -> EncryptedMessage:
        random16 = secrets.token_bytes(16) if random16 is None else random16
        if len(random16) != 16:
            raise ValueError("random16 必须正好 16 字节")
        body = message.encode()
        plain = random16 + len(body).to_bytes(4, "big") + body + self.receive_id.encode()
        pad = PAD_BLOCK - len(plain) % PAD_BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        encrypt = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")
        timestamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(8) if nonce is None else nonce
        return EncryptedMessage(encrypt, self.signature(timestamp, nonce, encrypt), timestamp, nonce)

    def decrypt(self, encrypt: str, *, signature: str, timestamp: str | int, nonce: str) -> str:
        """Verify the signature, decrypt, check the receive id; return the message text."""
        self.verify(signature, timestamp, nonce, encrypt)
        return self.open_verified(encrypt)

    def open_verified(self, encrypt: str) -> str:
        """``decrypt`` for a ciphertext whose signature the caller has just checked with ``verify``
        (callbacks check the replay window between the two, and SHA1 is not computed twice)."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except ValueError:
            raise CryptoError("bad_ciphertext") from None
        if not data or len(data) % 16:
            raise CryptoError("bad_ciphertext")
        decryptor = self._cipher().decryptor()
        content = _unpad(decryptor.update(data) + decryptor.finalize())[16:]
        if len(content) < 4 or int.from_bytes(content[:4], "big") > len(content) - 4:
            raise CryptoError("bad_length")
        end = 4 + int.from_bytes(content[:4], "big")
        if not _same(content[end:], self.receive_id):
            raise CryptoError("receive_id_mismatch")
        try:
            return content[4:end].decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("bad_text") from None

    def verify_url(self, msg_signature: str, timestamp: str | int, nonce: str, echostr: str) -> str:
        """Decrypt the URL-verification `echostr`; accepts one whose '+' was form-decoded to ' '."""
        try:
            return self.decrypt(echostr, signature=msg_signature, timestamp=timestamp, nonce=nonce)
        except CryptoError as error:
            if error.code != "bad_signature" or " " not in echostr:
                raise
        repaired = echostr.replace(" ", "+")
        return self.decrypt(repaired, signature=msg_signature, timestamp=timestamp, nonce=nonce)


def check_timestamp(timestamp: str | int, *, now: float, window: float) -> int:
    """Replay window: return the timestamp if |now - timestamp| <= window, else raise.

    Units are the caller's: seconds for WeCom, milliseconds for DingTalk.
    """
    text = str(timestamp)
    if not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise CryptoError("bad_timestamp")
    if abs(now - int(text)) > window:
        raise CryptoError("expired_timestamp")
    return int(text)


def dingtalk_robot_sign(app_secret: str, timestamp_ms: str | int) -> str:
    """DingTalk robot HTTP callback header `sign` = base64(HMAC-SHA256(appSecret, ts + "\\n" + appSecret))."""
    mac = hmac.new(app_secret.encode(), f"{timestamp_ms}\n{app_secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def verify_dingtalk_robot(
    app_secret: str,
    timestamp_ms: str | int,
    sign: str,
    *,
    now_ms: float | None = None,
    window_ms: float = DINGTALK_ROBOT_WINDOW_MS,
) -> None:
    """Raise `CryptoError` unless `sign` matches and `timestamp_ms` is within `window_ms` of now."""
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    check_timestamp(timestamp_ms, now=now_ms, window=float("inf"))
    if not _same(sign, dingtalk_robot_sign(app_secret, timestamp_ms)):
        raise CryptoError("bad_signature")
    check_timestamp(timestamp_ms, now=now_ms, window=window_ms)
