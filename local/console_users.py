"""Console users of the local server: a users file, their passwords (scrypt), and the local issuer that signs them in.

`cdp serve` signs console users in from a JSON file (`--users`, else `$CDP_CONSOLE_USERS_FILE`, else
`~/.cdp/console-users.json`; `cdp console add-user` writes it):

    {"users": {"mei": {"password": "scrypt$16384$8$1$<salt>$<hash>", "name": "Mei", "locale": "zh",
                       "scopes": ["profiles:read", "campaigns:read"], "scope": {"brand_id": "demo-outlet"}}}}

A user's `scopes` and `scope` mean what an API key's do. A signed-in user gets an ID token shaped as the stack's
Cognito user pool issues them (`cdp.ingest.console_tokens`): the same claims, RS256, checked by every function the
same way. The issuer's key is made when the process starts, so a restart signs everyone out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from functools import cache
from pathlib import Path
from typing import Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.auth import SCOPES, Grant
from cdp.ingest.console_tokens import ORG_SCOPE_CLAIM, SCOPES_CLAIM
from cdp.settings import ConfigurationError

LOCAL_ISSUER = "http://127.0.0.1:8787/console"  # what `iss` says: the local server signs its own users in
LOCAL_AUDIENCE = "cdp-console-local"  # the console's app client, as Cognito's client id is on AWS
TOKEN_SECONDS = 3600
USERS_FILE_ENV = "CDP_CONSOLE_USERS_FILE"
DEFAULT_USERS_FILE = Path.home() / ".cdp" / "console-users.json"  # one place whatever directory a command runs in
_SCRYPT = (2**14, 8, 1)  # n, r, p: about 16 MB and 50 ms a check

ROLES: dict[str, tuple[str, ...]] = {
    "marketer": (
        "profiles:read",
        "audiences:read",
        "audiences:write",
        "campaigns:read",
        "campaigns:write",
        "offers:read",
        "models:read",
        "analytics:read",
        "loyalty:read",
    ),
    "analyst": ("profiles:read", "audiences:read", "campaigns:read", "offers:read", "models:read", "analytics:read"),
    "operator": ("profiles:read", "profiles:write", "identity:merge", "operations:replay", "campaigns:read"),
    "admin": tuple(SCOPES),
}
"""Scopes a role grants (`cdp console add-user --role`); a user may also name scopes one by one."""


class ConsoleUser(Grant):
    """A user's scopes and org scope, as an API key's (`Grant`), and how they sign in."""

    password: str = Field(pattern=r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
    name: str = Field(default="", max_length=100)
    locale: Literal["en", "zh"] = "en"


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: dict[str, ConsoleUser] = Field(default_factory=dict)

    @field_validator("users")
    @classmethod
    def _names(cls, value: dict[str, ConsoleUser]) -> dict[str, ConsoleUser]:
        bad = [name for name in value if not (1 <= len(name) <= 64) or not name.isprintable() or " " in name]
        if bad:
            raise ValueError(f"user names must be 1-64 printable characters without spaces: {bad}")
        return value


def hash_password(password: str, salt: bytes | None = None) -> str:
    if len(password) < 8:
        raise InvalidInputError("a console password needs at least 8 characters", "password")
    n, r, p = _SCRYPT
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    given = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=2**26
    )
    return hmac.compare_digest(given, base64.b64decode(digest))


def users_file_path(given: Path | None = None) -> Path:
    return given or Path(os.environ.get(USERS_FILE_ENV) or DEFAULT_USERS_FILE)


def load_users(path: Path) -> UsersFile:
    """The users file (none yet: no users). A broken file is an error naming the file and the field."""
    if not path.exists():
        return UsersFile()
    try:
        return UsersFile.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise ConfigurationError(f"{path}: {problems}") from exc


def save_users(path: Path, users: UsersFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(users.model_dump(mode="json", exclude_defaults=True), indent=2) + "\n", "utf-8")
    path.chmod(0o600)  # password hashes: readable by their owner only


class LocalIssuer:
    """Signs users in with an RS256 key made at start; its public half is the functions' JWKS (`jwks`)."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(8)
        self._stand_in = hash_password(secrets.token_urlsafe(16))  # what an unknown user's password is checked on

    def jwks(self) -> str:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return json.dumps({"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": "RS256"}]})

    def sign_in(self, users: UsersFile, username: str, password: str) -> dict[str, object]:
        """An ID token for the user (AuthenticationError: unknown user or wrong password, said alike)."""
        user = users.users.get(username)
        # an unknown name is checked against a stand-in hash: one scrypt either way, so the time tells nothing
        if not password_matches(password, user.password if user else self._stand_in) or user is None:
            raise AuthenticationError("unknown user or wrong password")
        now = int(time.time())  # real time: a token's lifetime is not moved by the simulated clock
        claims = {
            "iss": LOCAL_ISSUER,
            "aud": LOCAL_AUDIENCE,
            "sub": username,
            "token_use": "id",
            "cognito:username": username,
            "name": user.name or username,
            "locale": user.locale,
            "iat": now,
            "exp": now + TOKEN_SECONDS,
            SCOPES_CLAIM: " ".join(user.scopes),
            ORG_SCOPE_CLAIM: user.scope.model_dump_json(exclude_none=True),
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})
        return {"id_token": token, "expires_in": TOKEN_SECONDS, "name": user.name or username, "locale": user.locale}


@cache
def local_issuer() -> LocalIssuer:
    """One issuer per process: every local runtime of the process accepts the tokens it signs."""
    return LocalIssuer()
