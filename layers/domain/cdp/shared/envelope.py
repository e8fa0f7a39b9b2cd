"""The one envelope for everything the platform publishes on its bus."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from cdp.shared.time import utc_now


class EventMetadata(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_name: str
    event_source: str
    event_version: str
    correlation_id: str
    created_at: datetime = Field(default_factory=utc_now)


DataT = TypeVar("DataT", bound=BaseModel)


class BusEvent(BaseModel, Generic[DataT]):
    """`detail` of an EventBridge entry: {"metadata": {...}, "data": {...}}."""

    model_config = ConfigDict(frozen=True)

    metadata: EventMetadata
    data: DataT


class BusDetail(BaseModel, Generic[DataT]):
    """How a consumer reads an EventBridge `detail` we published (parse it with `Json[BusEntry[MyData]]`)."""

    metadata: EventMetadata
    data: DataT


class Publishable(BaseModel):
    """Base for payloads we publish; subclasses name themselves and carry their version."""

    model_config = ConfigDict(frozen=True)

    event_name: ClassVar[str]
    event_source: ClassVar[str]
    event_version: ClassVar[str] = "1"

    def envelope(self, correlation_id: str) -> dict[str, Any]:
        meta = EventMetadata(
            event_name=self.event_name,
            event_source=self.event_source,
            event_version=self.event_version,
            correlation_id=correlation_id,
        )
        return {"metadata": meta.model_dump(mode="json"), "data": self.model_dump(mode="json")}


class BusEntry(EventBridgeModel, Generic[DataT]):
    """An EventBridge event as a bus rule delivers it, `detail` being our envelope around `DataT`.

    SQS-buffered consumers parse records with `class MyRecord(SqsRecordModel): body: Json[BusEntry[MyData]]`.
    """

    detail: BusDetail[DataT]
