"""`[servers.X.oauth]`: what it accepts, what it refuses (with what to do), and that the secret
never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config import OAuthConfig, ServerConfig
from adapters.oauth import oauth_auth
from workbench.cli.config import ConfigError, parse_config


def test_client_id_is_an_id_or_a_metadata_document_url() -> None:
    assert OAuthConfig(client_id="Iv1.abc").metadata_url is None
    assert OAuthConfig(client_id="https://app.example/client.json").metadata_url == "https://app.example/client.json"
    assert OAuthConfig(client_id="https://app.example/").metadata_url is None  # CIMD needs a path
    assert OAuthConfig().client_id is None  # dynamic registration


def test_the_token_endpoint_method_follows_the_credentials() -> None:
    assert OAuthConfig().auth_method == "none"
    assert OAuthConfig(client_id="a", client_secret="s").auth_method == "client_secret_basic"
    machine = OAuthConfig(grant="client_credentials", client_id="bot", private_key_file="k.pem")
    assert machine.auth_method == "private_key_jwt"


@pytest.mark.parametrize(("section", "message"), [
    ({"grant": "client_credentials", "client_id": "bot"}, "needs client_secret or private_key_file"),
    ({"grant": "client_credentials", "client_secret": "s"}, "needs the client_id"),
    ({"token_endpoint_auth_method": "private_key_jwt", "client_id": "a"}, "needs private_key_file"),
    ({"client_id": "a", "token_endpoint_auth_method": "client_secret_post"}, "needs client_secret"),
    ({"client_secret": "s"}, "client_secret without client_id"),
    ({"grant": "client_credentials", "client_id": "bot", "client_secret": "s", "issuer": "auth.example"},
     "issuer must be"),
])
def test_unusable_sections_are_refused_with_what_to_do(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OAuthConfig.model_validate(section)


def test_oauth_needs_a_url_server_without_a_static_token() -> None:
    with pytest.raises(ValueError, match="oauth needs a url server"):
        ServerConfig(command="x", oauth={})
    with pytest.raises(ValueError, match="oauth needs a url server"):
        ServerConfig(url="http://127.0.0.1:1/mcp", bearer_token="t", oauth={})


def test_the_secret_comes_from_the_environment_and_never_shows(tmp_path: Path) -> None:
    text = ('[servers.gh]\nurl = "https://example.test/mcp"\n[servers.gh.oauth]\nclient_id = "app"\n'
            'client_secret = "${GH_SECRET}"\n')
    config = parse_config(text, environ={"GH_SECRET": "s3cr3t-value"}, base_dir=tmp_path)
    oauth = config.servers["gh"].oauth
    assert oauth is not None and oauth.client_secret is not None
    assert oauth.client_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(config) and "s3cr3t-value" not in str(config.model_dump())
    auth = oauth_auth("gh", "https://example.test/mcp", oauth, base_dir=tmp_path)
    assert "s3cr3t-value" not in repr(auth)
    with pytest.raises(ConfigError, match="GH_SECRET is not set"):
        parse_config(text, environ={}, base_dir=tmp_path)


def test_a_missing_private_key_is_named(tmp_path: Path) -> None:
    cfg = OAuthConfig(grant="client_credentials", client_id="bot", private_key_file="keys/bot.pem")
    with pytest.raises(Exception, match=r"private_key_file: cannot read .*keys/bot.pem"):
        oauth_auth("svc", "https://example.test/mcp", cfg, base_dir=tmp_path)
