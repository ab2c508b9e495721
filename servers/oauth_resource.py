"""`workbench serve` as an OAuth 2.1 resource server: its protected-resource metadata (RFC 9728)
and the verification of access tokens an authorization server issued for it.

- JWT access tokens (RFC 9068) are checked with joserfc against the issuer's JWKS: signature
  with an asymmetric algorithm from the allowlist (never `none`, never an HMAC, so a public key
  cannot be used as a shared secret), `iss`, `aud` = this resource, `exp`/`nbf` with a small
  leeway. The JWKS is fetched with a timeout and a size bound, cached, and refetched when a token
  names an unknown `kid` (the issuer rotated its keys) — at most once per `jwks_refetch_interval`,
  so a stream of made-up `kid`s cannot make us hammer the authorization server.
- Opaque tokens go to the issuer's introspection endpoint (RFC 7662); answers are cached briefly
  (never past the token's `exp`) in a bounded table.

Both give the SDK's `AccessToken` with the subject as identity and the verified claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator
from starlette.routing import Route

from servers.auth import TokenRejected, Verifier, fingerprint
from workbench.core import logger

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                   "ES256", "ES384", "ES512", "EdDSA", "Ed25519"})
MAX_DOCUMENT_BYTES = 256 * 1024
"""JWKS, metadata and introspection answers larger than this are refused (an AS is untrusted input too)."""
MAX_CACHED_TOKENS = 10_000
MAX_CONCURRENT_INTROSPECTIONS = 8
"""Introspection requests in flight at once: a flood of made-up opaque tokens (each one a request to
the authorization server) waits its turn instead of opening a connection per token."""


class OAuthConfig(BaseModel):
    """`[serve.oauth]`: accept access tokens from one authorization server."""

    model_config = ConfigDict(extra="forbid")

    issuer: str
    """The authorization server's issuer identifier (its `iss`), e.g. https://login.example.com."""
    resource: str
    """This server's public URL as clients reach it, e.g. https://tools.example.com/mcp: the audience
    tokens must name, and the `resource` of the protected-resource metadata."""
    audiences: list[str] = Field(default_factory=list)
    """Further accepted `aud` values (some authorization servers use a client id or an API name)."""
    jwks_uri: str | None = None
    """Where the issuer publishes its keys; discovered from its metadata (RFC 8414 / OpenID) if unset."""
    introspection_endpoint: str | None = None
    """RFC 7662 endpoint for opaque tokens; with it, tokens that are not JWTs are introspected."""
    introspection_client_id: str | None = None
    introspection_client_secret: SecretStr | None = None
    required_scopes: list[str] = Field(default_factory=list)
    """Scopes every request's token must carry (else 403 insufficient_scope)."""
    scopes_supported: list[str] = Field(default_factory=list)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])
    leeway: int = Field(default=30, ge=0, le=300)
    """Seconds of clock skew tolerated on `exp` and `nbf`."""
    jwks_max_age: float = Field(default=3600.0, gt=0)
    jwks_refetch_interval: float = Field(default=30.0, ge=0)
    """Least seconds between two JWKS fetches caused by unknown `kid`s."""
    token_cache_seconds: float = Field(default=30.0, ge=0)
    """How long a verdict on a token is reused (never past its `exp`): a verified JWT is not checked
    again, an introspection answer not asked again. Also how late a revocation or a withdrawn key
    is noticed; 0 checks every request."""
    http_timeout: float = Field(default=5.0, gt=0, le=60)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not value:
            raise ValueError(f"serve.oauth.algorithms: {bad or 'empty'} not allowed; choose from "
                             f"{sorted(ASYMMETRIC_ALGORITHMS)} (symmetric and 'none' are never accepted)")
        return value

    @field_validator("issuer", "resource")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
        return value

    @property
    def accepted_audiences(self) -> list[str]:
        return [self.resource, *self.audiences]

    def metadata_url(self) -> str:
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))

    def metadata_routes(self, resource_name: str) -> list[Route]:
        """RFC 9728 metadata at `/.well-known/oauth-protected-resource{path}`, served by the SDK's
        handler. The model is built from the configured strings: an `AnyHttpUrl` made on its own
        would append "/" to a path-less issuer, and clients compare issuers exactly (RFC 8414 §3.3)."""
        metadata = ProtectedResourceMetadata.model_validate({
            "resource": self.resource, "authorization_servers": [self.issuer],
            "scopes_supported": self.scopes_supported or self.required_scopes or None,
            "resource_name": resource_name,
        })
        handler = ProtectedResourceMetadataHandler(metadata).handle
        path = urlsplit(self.metadata_url()).path
        return [Route(path, endpoint=cors_middleware(handler, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"])]


async def fetch_json(http: httpx2.AsyncClient, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """A JSON object from the authorization server, read at most MAX_DOCUMENT_BYTES far."""
    async with http.stream(method, url, **kwargs) as response:
        if response.status_code != 200:
            raise ValueError(f"{url} answered HTTP {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    data = json.loads(bytes(body))
    if not isinstance(data, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return data


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 §3 (path inserted after the host), then OpenID Connect discovery."""
    parts = urlsplit(issuer)
    base, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    return [f"{base}/.well-known/oauth-authorization-server{path}", f"{base}{path}/.well-known/openid-configuration"]


class TokenCache:
    """Recent verdicts by token hash (the token itself is not kept), each until its own deadline;
    bounded, the least recently used out first."""

    def __init__(self, limit: int = MAX_CACHED_TOKENS) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, tuple[float, AccessToken | TokenRejected]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> AccessToken | TokenRejected | None:
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.time():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, token: str, verdict: AccessToken | TokenRejected, seconds: float) -> None:
        until = time.time() + seconds
        if isinstance(verdict, AccessToken) and verdict.expires_at is not None:
            until = min(until, verdict.expires_at)
        if until <= time.time():
            return
        self._entries[self._key(token)] = (until, verdict)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)


class Jwks:
    """The issuer's signing keys: cached for `max_age`, refetched early for an unknown `kid`, but
    not more often than every `refetch_interval` seconds."""

    def __init__(self, config: OAuthConfig, http: httpx2.AsyncClient) -> None:
        self.config = config
        self.http = http
        self.keys = KeySet([])
        self.fetched_at = float("-inf")
        self.fetches = 0
        self._uri = config.jwks_uri
        self._lock = anyio.Lock()

    async def key_for(self, kid: str | None) -> Any:
        if self._due(kid):
            async with self._lock:
                if self._due(kid):  # the burst's first request may have fetched while this one waited
                    await self._refresh()
        if not self._has(kid):
            raise TokenRejected("unknown signing key (kid)" if kid else "no kid and the issuer has several keys")
        return self.keys.get_by_kid(kid)

    def _due(self, kid: str | None) -> bool:
        age = time.monotonic() - self.fetched_at
        return age > self.config.jwks_max_age or (not self._has(kid) and age >= self.config.jwks_refetch_interval)

    def _has(self, kid: str | None) -> bool:
        if kid is None:
            return len(self.keys.keys) == 1
        return any(k.kid == kid for k in self.keys.keys)

    async def fetch(self) -> KeySet:
        """The issuer's current keys (discovering where they are the first time); raises what went wrong."""
        if self._uri is None:
            self._uri = await self._discover()
        self.keys = KeySet.import_key_set(await fetch_json(self.http, "GET", self._uri))  # type: ignore[arg-type]
        return self.keys

    async def _refresh(self) -> None:
        self.fetched_at = time.monotonic()  # a failed fetch also waits its turn
        self.fetches += 1
        try:
            await self.fetch()
        except Exception as e:
            # Keep the keys we had: an unreachable AS must not turn valid tokens away.
            logger.error("cannot fetch the issuer's JWKS", extra={"issuer": self.config.issuer, "error": str(e)})

    async def _discover(self) -> str:
        for url in metadata_urls(self.config.issuer):
            try:
                metadata = await fetch_json(self.http, "GET", url)
            except Exception:
                continue
            if metadata.get("issuer") == self.config.issuer and isinstance(metadata.get("jwks_uri"), str):
                return str(metadata["jwks_uri"])
        raise ValueError(f"no metadata naming issuer {self.config.issuer} and a jwks_uri; set serve.oauth.jwks_uri")


def _scopes(claims: dict[str, Any]) -> list[str]:
    scope = claims.get("scope", claims.get("scp", []))
    if isinstance(scope, str):
        return scope.split()
    return [s for s in scope if isinstance(s, str)] if isinstance(scope, list) else []


def _access(token: str, claims: dict[str, Any], config: OAuthConfig) -> AccessToken:
    subject = claims.get("sub")
    client_id = claims.get("client_id", claims.get("azp", subject))
    if not isinstance(subject, str) or not subject or not isinstance(client_id, str):
        raise TokenRejected("no subject (sub)")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    resource = next((a for a in audiences if a in config.accepted_audiences), None)
    scopes = _scopes(claims)
    missing = [s for s in config.required_scopes if s not in scopes]
    if missing:
        raise TokenRejected(f"missing scope {' '.join(missing)}", status=403, error="insufficient_scope")
    exp = claims.get("exp")
    return AccessToken(token=fingerprint(token), client_id=client_id, subject=subject, scopes=scopes,
                       expires_at=int(exp) if isinstance(exp, int | float) else None, resource=resource,
                       claims=claims)


class JwtVerifier(Verifier):
    def __init__(self, config: OAuthConfig, http: httpx2.AsyncClient) -> None:
        self.config = config
        self.jwks = Jwks(config, http)
        self.algorithms = list(config.algorithms)
        self.verified = TokenCache()
        """Tokens already verified: a client sends the same one on every call, and checking its
        signature again costs ~0.2 ms (RS256/ES256) where the lookup costs ~2 µs."""

    def claims_token(self, token: str) -> bool:
        return token.count(".") == 2  # a JWS compact serialization; opaque tokens go to introspection

    async def check(self, token: str) -> AccessToken:
        cached = self.verified.get(token)
        if isinstance(cached, AccessToken):
            return cached
        access = await self._verify(token)
        self.verified.put(token, access, self.config.token_cache_seconds)  # only successes: failures are cheap
        return access

    async def _verify(self, token: str) -> AccessToken:
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError):
            raise TokenRejected("malformed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:  # before any key is looked up: 'none' and HS* stop here
            raise TokenRejected(f"algorithm {str(alg)[:16]!r} not accepted")
        kid = header.get("kid")
        key = await self.jwks.key_for(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(token, key, algorithms=self.algorithms).claims
        except BadSignatureError:
            raise TokenRejected("bad signature") from None
        except (JoseError, ValueError):
            raise TokenRejected("malformed JWT") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=self.config.leeway,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "values": self.config.accepted_audiences},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRejected("expired") from None
        except MissingClaimError as e:
            raise TokenRejected(f"missing claim {e.claim}") from None
        except InvalidClaimError as e:
            raise TokenRejected(_CLAIM_REASONS.get(e.claim, f"invalid claim {e.claim}")) from None
        return _access(token, claims, self.config)


_CLAIM_REASONS = {"iss": "wrong issuer", "aud": "wrong audience (not issued for this server)", "nbf": "not valid yet"}


class IntrospectionVerifier(Verifier):
    """Opaque tokens, asked of the issuer (RFC 7662), answers cached for a few seconds."""

    def __init__(self, config: OAuthConfig, http: httpx2.AsyncClient, endpoint: str) -> None:
        self.config = config
        self.http = http
        self.endpoint = endpoint
        self.answers = TokenCache()
        self.requests = 0
        self._in_flight = anyio.CapacityLimiter(MAX_CONCURRENT_INTROSPECTIONS)

    async def check(self, token: str) -> AccessToken:
        answer = self.answers.get(token)
        if answer is None:
            try:
                answer = self._judge(token, await self._introspect(token))
            except TokenRejected as e:
                answer = e
            self.answers.put(token, answer, self.config.token_cache_seconds)
        if isinstance(answer, TokenRejected):
            raise TokenRejected(answer.reason, status=answer.status, error=answer.error, judged=answer.judged)
        return answer

    async def _introspect(self, token: str) -> dict[str, Any]:
        self.requests += 1
        headers = {"Accept": "application/json"}
        if self.config.introspection_client_id:
            secret = self.config.introspection_client_secret
            pair = f"{self.config.introspection_client_id}:{secret.get_secret_value() if secret else ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            with anyio.fail_after(self.config.http_timeout * 2):  # waiting for a turn counts too
                async with self._in_flight:
                    return await fetch_json(self.http, "POST", self.endpoint, headers=headers,
                                            data={"token": token, "token_type_hint": "access_token"})
        except Exception as e:
            logger.error("token introspection failed", extra={"endpoint": self.endpoint, "error": str(e)})
            raise TokenRejected("the authorization server could not be asked", judged=False) from None

    def _judge(self, token: str, answer: dict[str, Any]) -> AccessToken:
        if answer.get("active") is not True:
            raise TokenRejected("inactive (revoked or expired)")
        issuer = answer.get("iss")
        if issuer is not None and issuer != self.config.issuer:
            raise TokenRejected("wrong issuer")
        audience = answer.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(a in self.config.accepted_audiences for a in audiences):
            raise TokenRejected("wrong audience (not issued for this server)")
        now = time.time()
        exp, nbf = answer.get("exp"), answer.get("nbf")
        if isinstance(exp, int | float) and exp <= now - self.config.leeway:
            raise TokenRejected("expired")
        if isinstance(nbf, int | float) and nbf > now + self.config.leeway:
            raise TokenRejected("not valid yet")
        return _access(token, answer, self.config)


def oauth_verifiers(config: OAuthConfig, http: httpx2.AsyncClient) -> Sequence[Verifier]:
    verifiers: list[Verifier] = [JwtVerifier(config, http)]
    if config.introspection_endpoint:
        verifiers.append(IntrospectionVerifier(config, http, config.introspection_endpoint))
    return verifiers


