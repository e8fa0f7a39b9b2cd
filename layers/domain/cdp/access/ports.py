"""Ports of the settings context: where API keys and console users are kept."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

from cdp.access.models import ConsoleUserInfo, NewConsoleUser

KeysEdit = Callable[[dict[str, Any]], None]
"""Changes the `keys` map of the ApiKeys secret in place (API key -> entry); it may be applied more than once (on
top of a version another writer made meanwhile), so it sets or removes, never toggles."""


class KeyStore(ABC):
    @abstractmethod
    def entries(self) -> dict[str, Any]:
        """The `keys` map as stored now (API key -> entry), read fresh."""

    @abstractmethod
    def change(self, edit: KeysEdit) -> None:
        """Apply `edit` to the current keys and store the result, keeping every other part of the secret."""


class UserDirectory(ABC):
    kind: Literal["cognito", "file"]

    @abstractmethod
    def users(self) -> list[ConsoleUserInfo]:
        """Every console user, enabled or not."""

    @abstractmethod
    def create(self, user: NewConsoleUser) -> ConsoleUserInfo:
        """Add the user, able to sign in at once with the password (SettingsConflictError: the name is taken)."""

    @abstractmethod
    def disable(self, username: str) -> None:
        """The user can no longer sign in (NotFoundError: no such user)."""
