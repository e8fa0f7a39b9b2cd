"""Console users of the local server: a users file, their passwords (scrypt), and the local issuer that signs them in.

`cdp serve` signs console users in from a JSON file (`--users`, else `$CDP_CONSOLE_USERS_FILE`, else
`~/.cdp/console-users.json`; `cdp console add-user` writes it):

    {"users": {"mei": {"password": "scrypt$16384$8$1$<salt>$<hash>", "name": "Mei", "locale": "zh",
                       "scopes": ["profiles:read", "campaigns:read"], "scope": {"brand_id": "demo-outlet"}}}}

A user's `scopes` and `scope` mean what an API key's do; a `disabled` user (`DELETE /v1/admin/console-users/{name}`)
cannot sign in. A signed-in user gets an ID token shaped as the stack's Cognito user pool issues them
(`cdp.ingest.console_tokens`): the same claims, RS256, checked by every function the same way. The issuer's key is
made when the process starts, so a restart signs everyone out.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from functools import cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from cdp.access.models import ROLES
from cdp.access.users_file import ConsoleUser, UsersFile, hash_password, load_users, password_matches, save_users
from cdp.errors import AuthenticationError
from cdp.ingest.console_tokens import ORG_SCOPE_CLAIM, SCOPES_CLAIM

__all__ = [
    "DEFAULT_USERS_FILE",
    "LOCAL_AUDIENCE",
    "LOCAL_ISSUER",
    "ROLES",
    "USERS_FILE_ENV",
    "ConsoleUser",
    "LocalIssuer",
    "UsersFile",
    "hash_password",
    "load_users",
    "local_issuer",
    "password_matches",
    "save_users",
    "users_file_path",
]

LOCAL_ISSUER = "http://127.0.0.1:8787/console"  # what `iss` says: the local server signs its own users in
LOCAL_AUDIENCE = "cdp-console-local"  # the console's app client, as Cognito's client id is on AWS
TOKEN_SECONDS = 3600
USERS_FILE_ENV = "CDP_CONSOLE_USERS_FILE"
DEFAULT_USERS_FILE = Path.home() / ".cdp" / "console-users.json"  # one place whatever directory a command runs in
# The file's format, its password hashes and the roles are the domain's (`cdp.access.users_file`): the operations
# function manages the same file's users in the local runtime (`POST /v1/admin/console-users`).


def users_file_path(given: Path | None = None) -> Path:
    return given or Path(os.environ.get(USERS_FILE_ENV) or DEFAULT_USERS_FILE)


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
        matches = password_matches(password, user.password if user else self._stand_in)
        if not matches or user is None or user.disabled:  # a disabled user is refused alike
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
