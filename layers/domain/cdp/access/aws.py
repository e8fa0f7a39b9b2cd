"""AWS adapters of the settings ports: the ApiKeys secret (Secrets Manager) and the console's Cognito user pool."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from cdp.access.models import ConsoleUserInfo, NewConsoleUser, SettingsConflictError
from cdp.access.ports import KeysEdit, KeyStore, UserDirectory
from cdp.errors import InvalidInputError, NotFoundError, StoreError
from cdp.ingest.console_tokens import ORG_SCOPE_CLAIM, SCOPES_CLAIM
from cdp.observability import logger
from cdp.org import ScopeRef
from cdp.shared.aws import client as default_client

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_TOKENS = uuid.UUID("7f1c2a4e-5b0d-4c3e-9a61-2d8f0b6e4c11")  # namespace of the write tokens (uuid5)


class SecretsManagerKeyStore(KeyStore):
    """The `keys` of the ApiKeys secret, changed by read -> edit -> PutSecretValue.

    Secrets Manager has no compare-and-set, so a write is checked on both sides: right before it, the version read is
    still the current one (else the edit starts again from the newer one); right after it, the version it replaced is
    the one it read (else another writer's version went in between, and the edit is written again on top of that
    version so neither change is lost), and when yet another version followed, that one still holds the change. What
    remains is a writer that does not check (a hand edit in the AWS console) loading the secret before this write and
    saving after it: that save wins, as any hand edit does. Each write names a ClientRequestToken made from the
    version it is based on and its content, so a retried call writes one version, not two. `on_change` runs after a
    successful write (the operations function forgets its cached keys there)."""

    ATTEMPTS = 4

    def __init__(
        self, secret_id: str, client: SecretsManagerClient | None = None, on_change: Callable[[], None] | None = None
    ) -> None:
        self._secret_id = secret_id
        self._sm: SecretsManagerClient = client or default_client("secretsmanager")
        self._on_change = on_change

    def _read(self, version_id: str | None = None) -> tuple[str, dict[str, Any]]:
        try:
            if version_id:
                found = self._sm.get_secret_value(SecretId=self._secret_id, VersionId=version_id)
            else:
                found = self._sm.get_secret_value(SecretId=self._secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading secret {self._secret_id} failed: {exc}") from exc
        try:
            document = json.loads(found["SecretString"])
        except (KeyError, json.JSONDecodeError) as exc:
            raise StoreError(f"secret {self._secret_id} is not a JSON document") from exc
        if not isinstance(document, dict) or not isinstance(document.get("keys", {}), dict):
            raise StoreError(f"secret {self._secret_id} is not an API keys document ({{'keys': {{...}}}})")
        return str(found["VersionId"]), document

    def _stages(self) -> dict[str, str]:
        """Staging label -> the version it labels."""
        try:
            described = self._sm.describe_secret(SecretId=self._secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"describing secret {self._secret_id} failed: {exc}") from exc
        return {
            label: version
            for version, labels in (described.get("VersionIdsToStages") or {}).items()
            for label in labels
        }

    def _put(self, base: str, document: dict[str, Any]) -> str:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        token = uuid.uuid5(_TOKENS, f"{base}:{hashlib.sha256(text.encode()).hexdigest()}")
        try:
            written = self._sm.put_secret_value(
                SecretId=self._secret_id, SecretString=text, ClientRequestToken=str(token)
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"writing secret {self._secret_id} failed: {_code(exc)}") from exc
        return str(written["VersionId"])

    def entries(self) -> dict[str, Any]:
        return dict(self._read()[1].get("keys") or {})

    def change(self, edit: KeysEdit) -> None:
        base, document = self._read()
        written: set[str] = set()
        for _ in range(self.ATTEMPTS):
            keys = copy.deepcopy(document.get("keys") or {})
            edit(keys)
            current, fresh = self._read()
            if current != base and current not in written:  # changed since it was read: edit the newer version
                base, document = current, fresh
                continue
            ours = self._put(base, {**document, "keys": keys})
            written.add(ours)
            stages = self._stages()
            if stages.get("AWSCURRENT") == ours:
                replaced = stages.get("AWSPREVIOUS")
                if replaced is None or replaced == base or replaced in written:
                    return self._changed()
                logger.warning("another write went in before this one: writing the change again on top of it")
                base, document = self._read(replaced)
                continue
            current, fresh = self._read()  # a newer version followed: does it still hold this change?
            if _holds(fresh, edit):
                return self._changed()
            base, document = current, fresh
        raise StoreError(f"secret {self._secret_id} kept changing under this write: try again")

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


def _holds(document: dict[str, Any], edit: KeysEdit) -> bool:
    keys = document.get("keys") or {}
    edited = copy.deepcopy(keys)
    edit(edited)
    return bool(edited == keys)


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or exc)
    return type(exc).__name__


class CognitoUserDirectory(UserDirectory):
    """The console's users in the stack's user pool: their scopes and org scope in the custom attributes the ID
    tokens carry (`custom:cdp_scopes`, space-separated; `custom:cdp_scope`, JSON), which only an administrator (this
    function's role) writes. A new user gets a permanent password at once (no first-sign-in challenge the console
    cannot answer); disabling keeps the user listed."""

    kind = "cognito"

    def __init__(self, user_pool_id: str, client: Any = None) -> None:
        self._pool = user_pool_id
        self._idp = client or default_client("cognito-idp")

    def _pages(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            request: dict[str, Any] = {"UserPoolId": self._pool, "Limit": 60}
            if token:
                request["PaginationToken"] = token
            try:
                page = self._idp.list_users(**request)
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"listing the users of {self._pool} failed: {_code(exc)}") from exc
            yield from page.get("Users", [])
            token = page.get("PaginationToken")
            if not token:
                return

    def users(self) -> list[ConsoleUserInfo]:
        return [_user_info(user) for user in self._pages()]

    def create(self, user: NewConsoleUser) -> ConsoleUserInfo:
        attributes = {
            "name": user.name or user.username,
            "locale": user.locale,
            SCOPES_CLAIM: " ".join(user.scopes),
            ORG_SCOPE_CLAIM: user.scope.model_dump_json(exclude_none=True),
        }
        password = user.password.get_secret_value()
        try:
            created = self._idp.admin_create_user(
                UserPoolId=self._pool,
                Username=user.username,
                UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
                TemporaryPassword=password,  # checked against the pool's policy before the user exists
                MessageAction="SUPPRESS",  # the administrator hands the password over; no e-mail from Cognito
            )
        except ClientError as exc:
            raise _refusal(exc, user.username) from exc
        except BotoCoreError as exc:
            raise StoreError(f"creating console user failed: {exc}") from exc
        try:
            self._idp.admin_set_user_password(
                UserPoolId=self._pool, Username=user.username, Password=password, Permanent=True
            )
        except (ClientError, BotoCoreError) as exc:
            self._remove_half_made(user.username)
            if isinstance(exc, ClientError) and _code(exc) == "InvalidPasswordException":
                raise InvalidInputError(_message(exc), "password") from exc
            raise StoreError(f"setting the console user's password failed: {_code(exc)}") from exc
        info = _user_info(created["User"])
        return info.model_copy(update={"status": "CONFIRMED"})

    def _remove_half_made(self, username: str) -> None:
        """A user whose password could not be set would be stuck in its first-sign-in challenge: remove it, so the
        request can simply be made again."""
        try:
            self._idp.admin_delete_user(UserPoolId=self._pool, Username=username)
        except (ClientError, BotoCoreError):
            logger.exception("a console user without its password was left in the pool", username=username)

    def disable(self, username: str) -> None:
        try:
            self._idp.admin_disable_user(UserPoolId=self._pool, Username=username)
        except ClientError as exc:
            if _code(exc) == "UserNotFoundException":
                raise NotFoundError(f"no console user {username!r}") from exc
            raise StoreError(f"disabling console user failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"disabling console user failed: {exc}") from exc


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message") or _code(exc))


def _refusal(exc: ClientError, username: str) -> Exception:
    code = _code(exc)
    if code in ("UsernameExistsException", "AliasExistsException"):
        return SettingsConflictError(f"a console user {username!r} exists already")
    if code == "InvalidPasswordException":
        return InvalidInputError(_message(exc), "password")
    if code == "InvalidParameterException":
        return InvalidInputError(_message(exc), "username")
    return StoreError(f"creating console user failed: {code}")


def _user_info(user: dict[str, Any]) -> ConsoleUserInfo:
    attributes = {a["Name"]: a.get("Value", "") for a in user.get("Attributes", [])}
    problem = None
    try:
        raw = attributes.get(ORG_SCOPE_CLAIM) or "{}"
        scope = ScopeRef.model_validate_json(raw)
    except ValidationError:
        scope, problem = ScopeRef(), f"{ORG_SCOPE_CLAIM} is not an org scope: the user's sign-in is refused by the API"
    created = user.get("UserCreateDate")
    return ConsoleUserInfo(
        username=str(user.get("Username", "")),
        name=attributes.get("name", ""),
        locale=attributes.get("locale") or None,
        scopes=sorted(attributes.get(SCOPES_CLAIM, "").split()),
        scope=scope,
        enabled=bool(user.get("Enabled", True)),
        status=user.get("UserStatus"),
        created_at=created if isinstance(created, datetime) else None,
        problem=problem,
    )
