"""Two sources whose prefixes claim the same resource URIs are refused when the config loads."""

import pytest

from workbench.cli.config import ConfigError, parse_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # `_` is not a scheme character: both serve `a-b+<scheme>://…`.
        ('[sandbox]\nenabled = false\n[servers.a_b]\ncommand = "x"\n\n[servers.a-b]\ncommand = "y"\n',
         "w.toml:6: servers.a-b.prefix: prefix 'a-b' of servers.a-b and prefix 'a_b' of servers.a_b "
         "both claim resource URIs that begin 'a-b+'"),
        # Schemes ignore case (RFC 3986 §3.1); the line is the explicit `prefix` key's.
        ('[sandbox]\nenabled = false\n[servers.one]\ncommand = "x"\nprefix = "GH"\n[servers.two]\ncommand = "y"\n'
         'prefix = "gh"\n', "w.toml:8: servers.two.prefix: prefix 'gh' of servers.two and prefix 'GH' of servers.one"),
        # `+` is a scheme character: `a+b+x://` would read as `a`'s `b+x://`.
        ('[sandbox]\nenabled = false\n[servers.a]\ncommand = "x"\n[servers.b]\ncommand = "y"\nprefix = "a+b"\n',
         "servers.b.prefix: prefix 'a+b' of servers.b and prefix 'a' of servers.a both claim resource URIs "
         "that begin 'a+b+'"),
        # A scheme starts with a letter, so `1` becomes `x1`.
        ('[sandbox]\nenabled = false\n[servers.1]\ncommand = "x"\n[servers.x1]\ncommand = "y"\n',
         "servers.x1.prefix: prefix 'x1' of servers.x1 and prefix '1' of servers.1"),
        # The sandbox is a source too.
        ('[servers.Sandbox]\ncommand = "x"\n\n[sandbox]\nenabled = true\n',
         "w.toml:4: sandbox.prefix: prefix 'sandbox' of sandbox and prefix 'Sandbox' of servers.Sandbox"),
    ],
)
def test_clashing_uri_prefixes_are_refused_naming_both_sources(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, source="w.toml", environ={})
    assert message in str(e.value)
    assert "set another prefix" in str(e.value)


def test_distinct_unprefixed_and_disabled_sources_load() -> None:
    cfg = parse_config(
        '[sandbox]\nenabled = false\n'
        '[servers.a_b]\ncommand = "x"\n'
        '[servers.a-b]\ncommand = "y"\nprefix = "ab2"\n'  # renamed out of the clash
        '[servers.plain1]\ncommand = "z"\nprefix = ""\n'  # unprefixed sources claim no scheme
        '[servers.plain2]\ncommand = "z"\nprefix = ""\n'
        '[servers.off]\ncommand = "z"\nprefix = "A_B"\nenabled = false\n'  # not mounted
        '[servers.ab]\ncommand = "z"\n',  # `ab+` is not a prefix of `ab2+` nor the reverse
        environ={},
    )
    assert set(cfg.servers) == {"a_b", "a-b", "plain1", "plain2", "off", "ab"}
