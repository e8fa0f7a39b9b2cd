"""The port every ad platform's custom-audience upload stands behind, its typed errors, and the retries.

An activation is three steps at the platform: create the audience that receives the ids (`create_audience`; Ocean
Engine creates its data source only at the end, so it answers None here), upload the hashed ids in files of at most
`max_ids_per_file` (`upload`: one call per file), and `complete` (Tencent: nothing more; Ocean Engine: create the
data source from the uploaded files). Each adapter makes one attempt per call and says how it ended:

- `AdPlatformRefused(permanent=False)`: refused for now (throttled, a 5xx, not reachable): certainly not done;
- `AdPlatformRefused(permanent=True)`: refused for good (our credentials, the request itself, a quota of the day);
- `AdPlatformNoAnswer`: no answer (a read timeout): the platform may have done it.

`RetryingAdPlatform` tries "refused for now" again after a backoff, and also "no answer" for an upload: appending
the same ids to an audience twice leaves the same audience, and Ocean Engine keeps an unused file only 14 days. A
create with no answer is not repeated (it could make a second, empty audience): the activation fails and says so.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from cdp.errors import CdpError

PlatformName = Literal["tencent_ads", "ocean_engine"]
PLATFORMS: tuple[PlatformName, ...] = ("tencent_ads", "ocean_engine")
T = TypeVar("T")


class AdPlatformError(CdpError):
    """A call to an ad platform did not succeed; `code` says why in a word (the platform's code when it gave one)."""

    def __init__(self, message: str, code: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


class AdPlatformRefused(AdPlatformError):
    """The platform answered and did not do it (certainly not done)."""


class AdPlatformNoAnswer(AdPlatformError):
    """No answer came: the platform may have done it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="no_answer", permanent=False)


class AdPlatform(ABC):
    name: PlatformName
    id_type: str  # what the uploaded hashes are, in the platform's own terms
    max_ids_per_file: int

    @abstractmethod
    def identifier(self, e164: str) -> str | None:
        """The hashed form of a mobile number (E.164) this platform matches, or None when it matches none."""

    @abstractmethod
    def create_audience(self, name: str, description: str) -> str | None:
        """Create the audience the files go to: its id, or None when the platform creates it at `complete`."""

    @abstractmethod
    def upload(self, audience_ref: str | None, hashes: Sequence[str]) -> str:
        """Upload one file of hashed ids (at most `max_ids_per_file`): the platform's reference to the file."""

    @abstractmethod
    def complete(self, audience_ref: str | None, file_refs: Sequence[str], name: str, description: str) -> str:
        """Finish: the platform's id of the audience that holds the uploaded ids."""


class AdPlatforms(ABC):
    """The brands' accounts (the sources secret's `ad_platforms`)."""

    @abstractmethod
    def platform(self, brand_id: str, name: PlatformName) -> AdPlatform | None:
        """The brand's account on `name` as an adapter, or None when the brand has none there."""


@dataclass(frozen=True)
class Backoff:
    """`attempts` calls in all, waiting `waits_s[i]` after the i-th (the last value repeats)."""

    attempts: int = 3
    waits_s: tuple[float, ...] = (0.5, 2.0)

    def wait(self, attempt: int) -> float:
        return self.waits_s[min(attempt - 1, len(self.waits_s) - 1)] if self.waits_s else 0.0


class RetryingAdPlatform(AdPlatform):
    def __init__(
        self, inner: AdPlatform, backoff: Backoff = Backoff(), sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._inner = inner
        self._backoff = backoff
        self._sleep = sleep
        self.name = inner.name
        self.id_type = inner.id_type
        self.max_ids_per_file = inner.max_ids_per_file

    def identifier(self, e164: str) -> str | None:
        return self._inner.identifier(e164)

    def create_audience(self, name: str, description: str) -> str | None:
        return self._retry(lambda: self._inner.create_audience(name, description), repeatable=False)

    def upload(self, audience_ref: str | None, hashes: Sequence[str]) -> str:
        return self._retry(lambda: self._inner.upload(audience_ref, hashes), repeatable=True)

    def complete(self, audience_ref: str | None, file_refs: Sequence[str], name: str, description: str) -> str:
        return self._retry(lambda: self._inner.complete(audience_ref, file_refs, name, description), repeatable=False)

    def _retry(self, call: Callable[[], T], repeatable: bool) -> T:
        for attempt in range(1, self._backoff.attempts + 1):
            try:
                return call()
            except AdPlatformNoAnswer:
                if not repeatable or attempt == self._backoff.attempts:
                    raise
            except AdPlatformRefused as exc:
                if exc.permanent or attempt == self._backoff.attempts:
                    raise
            self._sleep(self._backoff.wait(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover
