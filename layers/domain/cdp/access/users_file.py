"""The local runtime's console users: the users file `cdp serve` signs them in from (`cdp_local.console_users`),
and its adapter of the `UserDirectory` port. Only the local runtime names a users file (CONSOLE_USERS_FILE); a
deployment's users are in its Cognito user pool (`cdp.access.aws.CognitoUserDirectory`).

    {"users": {"mei": {"password": "scrypt$16384$8$1$<salt>$<hash>", "name": "Mei", "locale": "zh",
                       "scopes": ["profiles:read", "campaigns:read"], "scope": {"brand_id": "demo-outlet"}}}}

A user's `scopes` and `scope` mean what an API key's do; `disabled` users cannot sign in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp.access.models import ConsoleUserInfo, NewConsoleUser, SettingsConflictError
from cdp.access.ports import UserDirectory
from cdp.errors import InvalidInputError, NotFoundError
from cdp.ingest.auth import Grant
from cdp.settings import ConfigurationError
from cdp.shared.time import utc_now

_SCRYPT = (2**14, 8, 1)  # n, r, p: about 16 MB and 50 ms a check


class ConsoleUser(Grant):
    """A user's scopes and org scope, as an API key's (`Grant`), and how they sign in."""

    password: str = Field(pattern=r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
    name: str = Field(default="", max_length=100)
    locale: Literal["en", "zh"] = "en"
    disabled: bool = False
    created_at: datetime | None = None


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
    """Written whole to a new file that then replaces the old one: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps(users.model_dump(mode="json", exclude_defaults=True), indent=2, ensure_ascii=False) + "\n"
    fresh = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fresh.write_text(text, "utf-8")
    fresh.chmod(0o600)  # password hashes: readable by their owner only
    os.replace(fresh, path)


class UsersFileDirectory(UserDirectory):
    kind = "file"

    def __init__(self, path: Path) -> None:
        self._path = path

    def users(self) -> list[ConsoleUserInfo]:
        return [_info(name, user) for name, user in load_users(self._path).users.items()]

    def create(self, user: NewConsoleUser) -> ConsoleUserInfo:
        found = load_users(self._path)
        if user.username in found.users:
            raise SettingsConflictError(f"a console user {user.username!r} exists already")
        stored = ConsoleUser(
            password=hash_password(user.password.get_secret_value()),
            name=user.name,
            locale=user.locale,
            scopes=list(user.scopes),
            scope=user.scope,
            created_at=utc_now(),
        )
        found.users[user.username] = stored
        save_users(self._path, found)
        return _info(user.username, stored)

    def disable(self, username: str) -> None:
        found = load_users(self._path)
        user = found.users.get(username)
        if user is None:
            raise NotFoundError(f"no console user {username!r}")
        found.users[username] = user.model_copy(update={"disabled": True})
        save_users(self._path, found)


def _info(username: str, user: ConsoleUser) -> ConsoleUserInfo:
    return ConsoleUserInfo(
        username=username,
        name=user.name,
        locale=user.locale,
        scopes=sorted(user.scopes),
        scope=user.scope,
        enabled=not user.disabled,
        created_at=user.created_at,
    )
