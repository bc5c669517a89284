"""The three token kinds of CONTRACTS section 3, with PyJWT.

Every token is HS256 with a required `exp` and a pinned audience; a token of one
kind is refused where another is expected because the audiences differ (and the
service kind is signed with its own secret). Views call `require_user`,
`require_public` or `require_service` first; each returns a small principal or
raises 401/403 in the shared error shape.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import jwt
from bson import ObjectId
from flask import current_app, request

from .errors import Forbidden, Unauthorized
from .timeutil import parse_object_id

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
USER_AUDIENCE = "jarvis"
PUBLIC_AUDIENCE = "public-api"
SERVICE_AUDIENCE = "internal"
SESSION_COOKIE = "session"
ACCOUNTING = "accounting"
INVOICES_READ = "invoices:read"

# OpenAPI security schemes, registered by `web.create_app`.
SECURITY_SCHEMES = {
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
    "bearerJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}
USER_SECURITY = [{"sessionCookie": []}, {"bearerJwt": []}]
BEARER_SECURITY = [{"bearerJwt": []}]


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


def decode(token: str, secret: str, audience: str) -> dict:
    """Verified claims, or `Unauthorized` saying what is wrong (never echoing the token)."""
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired.", code="token_expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized("The token is not valid for this API.", code="invalid_token") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"The token lacks the '{exc.claim}' claim.", code="invalid_token") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("The token is malformed or its signature is invalid.", code="invalid_token") from None


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
    """The jarvis user of this request (cookie `session` or Bearer), holding `permission`."""
    token = _bearer() or request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("A session cookie or a Bearer token is required.")
    user = user_from_token(token, _settings().jwt_secret)
    if permission not in user.permissions:
        raise Forbidden(f"The '{permission}' permission is required.", code="missing_permission")
    return user


def require_public(scope: str = INVOICES_READ) -> PublicClient:
    token = _bearer()
    if not token:
        raise Unauthorized("A Bearer token is required.")
    caller = public_client_from_token(token, _settings().jwt_secret)
    if scope not in caller.scopes:
        raise Forbidden(f"The '{scope}' scope is required.", code="missing_scope")
    return caller


def require_service() -> Service:
    token = _bearer()
    if not token:
        raise Unauthorized("A service token is required.")
    return service_from_token(token, _settings().service_jwt_secret)


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
