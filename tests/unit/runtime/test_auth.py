"""Worker tokens: every way a worker can present one, compared in constant time, refusals typed."""

from __future__ import annotations

from livedub.runtime.config import Settings
from livedub.runtime.logs import redact
from livedub.runtime.server.auth import TokenAuthenticator

TOKEN = "ab+cd/ef=="  # what `openssl rand -base64` looks like: '+', '/' and '='


def authenticator() -> TokenAuthenticator:
    return TokenAuthenticator(Settings(_env_file=None, auth_mode="required", auth_tokens=TOKEN))


def test_a_query_token_is_accepted_raw_or_percent_encoded():
    auth = authenticator()
    assert auth.check({"QUERY_STRING": f"EIO=4&token={TOKEN}&transport=websocket"}, None) is None
    assert auth.check({"QUERY_STRING": "EIO=4&token=ab%2Bcd%2Fef%3D%3D"}, None) is None
    assert auth.check({"QUERY_STRING": "token=ab+cd"}, None) == "invalid worker token"
    assert auth.check({"QUERY_STRING": "EIO=4"}, None) is not None


def test_any_valid_credential_admits_and_junk_is_refused_not_raised():
    auth = authenticator()
    assert auth.check({"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, {"token": "stale"}) is None
    assert auth.check({}, {"token": "\udcff"}) == "invalid worker token"  # a lone surrogate


def test_tokens_are_redacted_from_log_lines():
    line = f'GET /socket.io/?EIO=4&token={TOKEN}&transport=websocket HTTP/9.9 "Authorization: Bearer {TOKEN}"'
    assert TOKEN not in redact(line) and "token=***" in redact(line) and "Bearer ***" in redact(line)
