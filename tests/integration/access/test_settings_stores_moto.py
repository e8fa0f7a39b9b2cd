"""The settings adapters on moto: the console's Cognito user pool (users added can sign in at once with their
scopes in the ID token; disabled ones cannot) and the ApiKeys secret changed without losing a concurrent write."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr

from cdp.access.aws import CognitoUserDirectory, SecretsManagerKeyStore
from cdp.access.models import NewConsoleUser, SettingsConflictError
from cdp.errors import InvalidInputError, NotFoundError
from cdp.ingest.aws import SecretsManagerKeyring
from cdp.ingest.console_tokens import ORG_SCOPE_CLAIM, SCOPES_CLAIM
from cdp.org import ScopeRef

PASSWORD = "Long-enough-Passw0rd!"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def pool(aws: None) -> tuple[Any, str, str]:
    """A user pool shaped as the stack's (infra/components/console.py): the two custom attributes, a password client."""
    idp = boto3.client("cognito-idp", region_name="us-east-1")
    pool_id = idp.create_user_pool(
        PoolName="console",
        Policies={"PasswordPolicy": {"MinimumLength": 12, "RequireNumbers": True, "RequireSymbols": True}},
        Schema=[
            {"Name": "cdp_scopes", "AttributeDataType": "String", "Mutable": True},
            {"Name": "cdp_scope", "AttributeDataType": "String", "Mutable": True},
        ],
    )["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="console", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    return idp, pool_id, client_id


def _user(username: str = "lin", password: str = PASSWORD) -> NewConsoleUser:
    return NewConsoleUser(
        username=username,
        name="Lin Wei",
        scopes=("campaigns:read", "profiles:read"),
        scope=ScopeRef(brand_id="demo-brand", store_id="sh01"),
        locale="zh",
        password=SecretStr(password),
    )


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_a_user_added_to_the_pool_signs_in_at_once_with_scopes_in_the_id_token(pool: tuple[Any, str, str]) -> None:
    idp, pool_id, client_id = pool
    directory = CognitoUserDirectory(pool_id, idp)
    # When the administrator adds a user
    added = directory.create(_user())
    assert added.username == "lin" and added.enabled and added.status == "CONFIRMED"
    # Then the user signs in with the password at once: no new-password challenge the console cannot answer
    answer = idp.initiate_auth(
        ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": "lin", "PASSWORD": PASSWORD}
    )
    assert "ChallengeName" not in answer
    claims = _claims(answer["AuthenticationResult"]["IdToken"])
    # And the token carries the scopes (space-separated) and the org scope (JSON) every function reads
    assert claims[SCOPES_CLAIM] == "campaigns:read profiles:read"
    assert json.loads(claims[ORG_SCOPE_CLAIM]) == {"brand_id": "demo-brand", "store_id": "sh01"}
    # And the list shows the user with what the pool holds
    (listed,) = directory.users()
    assert listed.scopes == ["campaigns:read", "profiles:read"] and listed.scope.store_id == "sh01"
    assert listed.name == "Lin Wei" and listed.locale == "zh" and listed.created_at is not None


def test_a_taken_name_is_a_conflict_and_a_disabled_user_cannot_sign_in(pool: tuple[Any, str, str]) -> None:
    idp, pool_id, client_id = pool
    directory = CognitoUserDirectory(pool_id, idp)
    directory.create(_user())
    with pytest.raises(SettingsConflictError):
        directory.create(_user())
    # When disabled / Then listed as disabled, and the sign-in is refused
    directory.disable("lin")
    (listed,) = directory.users()
    assert listed.enabled is False
    with pytest.raises(idp.exceptions.NotAuthorizedException):
        idp.initiate_auth(
            ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": "lin", "PASSWORD": PASSWORD}
        )
    with pytest.raises(NotFoundError):
        directory.disable("nobody")


def test_a_password_the_pool_refuses_is_a_400_on_password_and_leaves_no_user(pool: tuple[Any, str, str]) -> None:
    idp, pool_id, _ = pool
    directory = CognitoUserDirectory(pool_id, idp)
    with pytest.raises(InvalidInputError) as caught:
        directory.create(_user(password="short-pw"))
    assert caught.value.location == "password"
    assert directory.users() == []


def test_many_users_are_listed_across_pages(pool: tuple[Any, str, str]) -> None:
    idp, pool_id, _ = pool
    for n in range(65):
        idp.admin_create_user(UserPoolId=pool_id, Username=f"user{n:02d}", MessageAction="SUPPRESS")
    users = CognitoUserDirectory(pool_id, idp).users()
    assert len(users) == 65 and users[0].scopes == [] and users[0].scope == ScopeRef()


# ---- the ApiKeys secret --------------------------------------------------------------------------------------


@pytest.fixture
def secret(aws: None) -> Any:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    document = {"keys": {"old-key": {"client": "old", "scopes": ["events:write"]}}, "hmac": {"hook": "hook-secret"}}
    sm.create_secret(Name="cdp/api-keys", SecretString=json.dumps(document))
    return sm


def _document(sm: Any) -> dict[str, Any]:
    return dict(json.loads(sm.get_secret_value(SecretId="cdp/api-keys")["SecretString"]))


def test_a_change_keeps_the_rest_of_the_secret_and_refreshes_the_keyrings_at_once(secret: Any) -> None:
    keyring = SecretsManagerKeyring("cdp/api-keys", secret)
    assert set(keyring.clients()) == {"old-key"}  # read and cached for TTL_S
    store = SecretsManagerKeyStore(
        "cdp/api-keys", secret, on_change=lambda: SecretsManagerKeyring.forget("cdp/api-keys")
    )

    def add(keys: dict[str, Any]) -> None:
        keys["new-key"] = {"client": "new", "scopes": ["profiles:read"]}

    store.change(add)
    assert _document(secret)["hmac"] == {"hook": "hook-secret"}
    assert set(store.entries()) == {"old-key", "new-key"}
    # And the keyring of this process reads the secret again at its next request
    assert set(keyring.clients()) == {"old-key", "new-key"}


class _Interleaved:
    """A Secrets Manager client on which another writer's version lands just before our first write (after our
    check): the race Secrets Manager cannot prevent (it has no compare-and-set)."""

    def __init__(self, sm: Any, other: dict[str, Any]) -> None:
        self._sm, self._other, self.puts = sm, other, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sm, name)

    def put_secret_value(self, **request: Any) -> Any:
        self.puts += 1
        if self.puts == 1:
            document = _document(self._sm)
            document["keys"].update(self._other)
            self._sm.put_secret_value(SecretId="cdp/api-keys", SecretString=json.dumps(document))
        return self._sm.put_secret_value(**request)


def test_a_write_that_overtook_another_is_written_again_on_top_of_it(secret: Any) -> None:
    # Given another writer adds a key between our check and our write
    theirs = {"their-key": {"client": "theirs", "scopes": ["events:write"]}}
    client = _Interleaved(secret, theirs)
    store = SecretsManagerKeyStore("cdp/api-keys", client)

    def revoke_old(keys: dict[str, Any]) -> None:
        keys.pop("old-key", None)

    # When we revoke a key
    store.change(revoke_old)
    # Then both changes are in the secret: theirs was not lost to ours, ours is in force
    assert set(_document(secret)["keys"]) == {"their-key"}
    assert client.puts == 2
