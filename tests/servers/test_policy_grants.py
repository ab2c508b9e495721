"""`Policy.grant` is worked out once per caller and kept (bounded): the key is everything the rules
read — identity and scopes, and the claims whenever a rule reads claims — so no caller ever gets
another's grant."""

from __future__ import annotations

from servers.policy import GRANTS_CACHED, Policy, PolicyConfig, PolicyRule
from workbench.core import CallContext


def test_same_identity_other_scopes_gets_its_own_grant() -> None:
    policy = Policy(PolicyConfig(rules=[PolicyRule(identities=["*"], tools=["read_*"]),
                                        PolicyRule(scopes=["admin"], tools=["drop_*"])]))
    plain = CallContext(identity="alice")
    admin = CallContext(identity="alice", scopes=frozenset({"admin"}))
    for _ in range(2):  # the second time from the cache
        assert not policy.grant(plain).tools.admits("drop_table")
        assert policy.grant(admin).tools.admits("drop_table")
        assert policy.grant(CallContext(identity="bob")).tools.admits("read_file")


def test_rules_that_read_claims_are_decided_on_each_caller_s_claims() -> None:
    policy = Policy(PolicyConfig(rules=[PolicyRule(claims={"groups": ["ops"]}, tools=["*"])]))
    for _ in range(2):
        assert policy.grant(CallContext(identity="carol", claims={"groups": ["ops"]})).tools.admits("x")
        assert not policy.grant(CallContext(identity="carol", claims={"groups": ["dev"]})).tools.admits("x")


def test_the_kept_grants_are_bounded() -> None:
    policy = Policy(PolicyConfig(rules=[PolicyRule(identities=["*"], tools=["*"])]))
    for n in range(GRANTS_CACHED + 50):
        assert policy.grant(CallContext(identity=f"client-{n}")).tools.admits("t")
    assert policy._cached_grant.cache_info().currsize == GRANTS_CACHED
