"""The three token kinds (jarvis user, public API, service), with PyJWT.

Every token is HS256 with a required `exp` and a pinned audience; a token of one
kind is refused where another is expected because the audiences differ (and the
service kind is signed with its own secret); a token naming several audiences, or
whose `exp` is not a number, is refused. Views call `require_user` or
`require_public` first; internal blueprints call `authenticate_services`, which
checks the calling component against the `callers` its view names. Each returns a
small principal or raises 401/403 (415 for a cookie POST that is not JSON) in the
shared error shape.
"""

from __future__ import annotations

import dataclasses
import numbers
import threading
import time
from collections.abc import Collection

import jwt
from bson import ObjectId
from flask import current_app, g, request

from .errors import Forbidden, Unauthorized, UnsupportedMediaType
from .timeutil import parse_object_id

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
USER_AUDIENCE = "jarvis"
PUBLIC_AUDIENCE = "public-api"
SERVICE_AUDIENCE = "internal"
SESSION_COOKIE = "session"
ACCOUNTING = "accounting"
INVOICES_READ = "invoices:read"

# The `sub` of each component's service tokens; an internal route names the ones it serves.
INGEST_WORKER = "ingest-worker"
INVOICES_SERVICE = "invoices-service"

# OpenAPI security schemes: one per token kind, so a client (or a fuzzer) knows which token an
# operation takes; each document registers those its operations name (`openapi`).
SESSION_SCHEME = "sessionCookie"
SECURITY_SCHEMES = {
    SESSION_SCHEME: {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                     "description": "A jarvis user token (`aud` jarvis) in the `session` cookie. A POST it alone "
                                    "authenticates must be `application/json` (415). With a Bearer token too, "
                                    "both must be valid tokens of the same user and company (401 otherwise)."},
    "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                  "description": "A jarvis user token (`aud` jarvis, with `sub`, `client`, `permissions`)."},
    "publicToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "A public API token (`aud` public-api, `client`, `scope` with invoices:read)."},
    "serviceToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                     "description": "A service token (`aud` internal), signed with SERVICE_JWT_SECRET."},
}
USER_SECURITY = [{SESSION_SCHEME: []}, {"userToken": []}]
PUBLIC_SECURITY = [{"publicToken": []}]
SERVICE_SECURITY = [{"serviceToken": []}]


@dataclasses.dataclass(frozen=True)
class User:
    user_id: str
    client: ObjectId
    permissions: frozenset[str]


@dataclasses.dataclass(frozen=True)
class PublicClient:
    client: ObjectId
    scopes: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Service:
    name: str


class VerifiedTokens:
    """The claims of the tokens this process verified lately, by token, secret and audience.

    A client sends the same token with each of its requests: its signature and claims are checked
    the first time (PyJWT: 0.25 ms of a list request), then only its expiry, the one thing about a
    verified token that changes with time. A token that fails is never kept. At most `SIZE` tokens
    are kept, the oldest dropped first.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._claims: dict[tuple[str, str, str], dict] = {}
        self._lock = threading.Lock()

    def get(self, token: str, secret: str, audience: str) -> dict | None:
        """The token's claims while it has not expired (PyJWT's rule, same leeway), else None."""
        claims = self._claims.get((token, secret, audience))
        if claims is None or claims["exp"] <= time.time() - LEEWAY_SECONDS:
            return None
        return claims

    def keep(self, token: str, secret: str, audience: str, claims: dict) -> None:
        with self._lock:
            if len(self._claims) >= self.SIZE:
                del self._claims[next(iter(self._claims))]
            self._claims[(token, secret, audience)] = claims


_verified = VerifiedTokens()


def decode(token: str, secret: str, audience: str) -> dict:
    """Verified claims (read-only: they are shared by the token's requests), or `Unauthorized`
    saying what is wrong (never echoing the token)."""
    claims = _verified.get(token, secret, audience)
    if claims is None:
        claims = _verify(token, secret, audience)
        _verified.keep(token, secret, audience, claims)
    return claims


def _verify(token: str, secret: str, audience: str) -> dict:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            leeway=LEEWAY_SECONDS,
            # strict_aud: `aud` must be the one audience as a string, never a list naming several.
            options={"require": ["exp", "aud"], "strict_aud": True},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired.", code="token_expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized("The token is not valid for this API.", code="invalid_token") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"The token lacks the '{exc.claim}' claim.", code="invalid_token") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("The token is malformed or its signature is invalid.", code="invalid_token") from None
    # PyJWT reads a time claim with int(), so "9999999999" would pass: a JSON number only.
    for name in ("exp", "nbf", "iat"):
        if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], numbers.Real)):
            raise Unauthorized(f"The token's '{name}' claim is not a number.", code="invalid_token")
    return claims


def _client_claim(claims: dict) -> ObjectId:
    client = parse_object_id(claims.get("client"))
    if client is None:
        raise Unauthorized("The token's 'client' claim is not a company id.", code="invalid_token")
    return client


def user_from_token(token: str, secret: str) -> User:
    claims = decode(token, secret, USER_AUDIENCE)
    permissions = claims.get("permissions", [])
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("The token lacks a 'sub' claim.", code="invalid_token")
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise Unauthorized("The token's 'permissions' claim is not a list of strings.", code="invalid_token")
    return User(user_id=sub, client=_client_claim(claims), permissions=frozenset(permissions))


def public_client_from_token(token: str, secret: str) -> PublicClient:
    claims = decode(token, secret, PUBLIC_AUDIENCE)
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Unauthorized("The token's 'scope' claim is not a string.", code="invalid_token")
    return PublicClient(client=_client_claim(claims), scopes=frozenset(scope.split()))


def service_from_token(token: str, secret: str) -> Service:
    claims = decode(token, secret, SERVICE_AUDIENCE)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("The token lacks a 'sub' claim.", code="invalid_token")
    return Service(name=sub)


# --- Flask request helpers -------------------------------------------------

def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.", code="invalid_token")
    return token.strip()


def _settings():
    return current_app.config["SETTINGS"]


def require_user(permission: str = ACCOUNTING) -> User:
    """The jarvis user of this request (Bearer token or cookie `session`), holding `permission`.

    A request may carry both only when both are valid tokens of the same user and company (the
    Bearer token's permissions then apply): credentials that disagree are 401, never a choice."""
    bearer = _bearer()
    cookie = request.cookies.get(SESSION_COOKIE)
    tokens = [token for token in (bearer, cookie) if token is not None]
    if not tokens:
        raise Unauthorized("A session cookie or a Bearer token is required.")
    users = [user_from_token(token, _settings().jwt_secret) for token in tokens]
    if len({(user.user_id, user.client) for user in users}) > 1:
        raise Unauthorized("The session cookie and the Bearer token name different users.",
                           code="conflicting_credentials")
    user = users[0]
    if permission not in user.permissions:
        raise Forbidden(f"The '{permission}' permission is required.", code="missing_permission")
    # A cross-site form can POST with the cookie but cannot send this content type (nor a Bearer token).
    if bearer is None and request.method == "POST" and request.mimetype != "application/json":
        raise UnsupportedMediaType("A POST authenticated by the session cookie must be application/json.")
    return user


def require_public(scope: str = INVOICES_READ) -> PublicClient:
    token = _bearer()
    if not token:
        raise Unauthorized("A Bearer token is required.")
    caller = public_client_from_token(token, _settings().jwt_secret)
    if scope not in caller.scopes:
        raise Forbidden(f"The '{scope}' scope is required.", code="missing_scope")
    return caller


def require_service(allowed: Collection[str]) -> Service:
    """The calling component, when its service token is valid and its `sub` is in `allowed`."""
    token = _bearer()
    if not token:
        raise Unauthorized("A service token is required.")
    service = service_from_token(token, _settings().service_jwt_secret)
    if service.name not in allowed:
        raise Forbidden("This route does not serve the calling component.", code="service_not_allowed")
    return service


def authenticate_services(blueprint) -> None:
    """Before every route of `blueprint`: a service token whose `sub` is one of the `callers`
    its MethodView class names (a view naming none serves nobody). Runs before the body is
    parsed, so a caller without a valid token learns nothing from a 400."""

    @blueprint.before_request
    def authenticate():
        view = current_app.view_functions.get(request.endpoint)
        g.service = require_service(getattr(getattr(view, "view_class", None), "callers", ()))


# --- minting ---------------------------------------------------------------

def _mint(secret: str, claims: dict, ttl_seconds: int) -> str:
    now = int(time.time())
    return jwt.encode({**claims, "iat": now, "exp": now + ttl_seconds}, secret, algorithm=ALGORITHM)


def mint_user_token(secret: str, *, user_id: str, client: str | ObjectId,
                    permissions: list[str], ttl_seconds: int = 3600) -> str:
    return _mint(secret, {"aud": USER_AUDIENCE, "sub": user_id, "client": str(client),
                          "permissions": list(permissions)}, ttl_seconds)


def mint_public_token(secret: str, *, client: str | ObjectId, scope: str = INVOICES_READ,
                      ttl_seconds: int = 3600) -> str:
    return _mint(secret, {"aud": PUBLIC_AUDIENCE, "client": str(client), "scope": scope}, ttl_seconds)


def mint_service_token(secret: str, *, name: str, ttl_seconds: int = 300) -> str:
    return _mint(secret, {"aud": SERVICE_AUDIENCE, "sub": name}, ttl_seconds)


class ServiceTokenSource:
    """A short-lived service token, minted again shortly before it expires (thread-safe)."""

    def __init__(self, secret: str, name: str, ttl_seconds: int = 300):
        self._secret, self._name, self._ttl = secret, name, ttl_seconds
        self._token, self._renew_at = "", 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if time.monotonic() >= self._renew_at:
                self._token = mint_service_token(self._secret, name=self._name, ttl_seconds=self._ttl)
                self._renew_at = time.monotonic() + self._ttl / 2
            return self._token
