"""Every inbound request of every connector takes the same path:

size limit -> authenticate against the source's own secret (a signature that does not bind the body also claims its
nonce; an encrypted envelope is opened) -> archive the raw body (with what replay needs) ->
map the channel's payload to canonical events -> validate each -> dedupe on (source, event id) -> publish.
A request that fails authentication or the size limit is never archived; one that is archived is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdp.connectors.base import Connector, InboundRequest, Mapped, Reply
from cdp.connectors.sources import SourceRegistry
from cdp.ingest.ports import DedupeLedger, RawArchive
from cdp.ingest.security import check_media_type, check_size, decoded_body
from cdp.ingest.service import IngestResult, RegionOf, WriteScope, accept
from cdp.org import ScopeRef, load_org
from cdp.shared.ports import EventPublisher
from cdp.shared.safe_json import check_depth

META_CONNECTOR = "connector"
META_KEY = "source-key"
META_BRAND = "brand-id"
META_STORE = "store-id"
META_CHANNEL = "channel"
META_LABEL = "source-label"
META_METHOD = "method"
META_ENCODING = "content-encoding"


@dataclass(frozen=True)
class Ports:
    sources: SourceRegistry
    archive: RawArchive
    ledger: DedupeLedger
    publisher: EventPublisher
    region_of: RegionOf


@dataclass(frozen=True)
class Received:
    result: IngestResult
    reply: Reply | None  # the channel-specific answer, when the channel expects one


def receive(request: InboundRequest, connector: Connector, ports: Ports) -> Received:
    check_size(request.body, connector.max_body_bytes)
    check_media_type(request.headers, request.body, connector.media_types)
    body = decoded_body(request.body, request.headers, connector.max_body_bytes)  # bounded: a gzip bomb stops here
    if connector.json_body and body:
        check_depth(body)  # before anything parses it (a Segment body is read for its writeKey to authenticate)
    secrets = ports.sources.sources()
    binding = connector.authenticate(request, secrets)
    connector.check_replay(_with_body(request, body), binding, secrets, ports.ledger)
    opened = connector.unseal(_with_body(request, body), secrets)
    if opened is not None:  # an encrypted envelope (WeChat safe mode): the payload inside is archived and mapped
        request = _with_body(request, opened)
        body = opened
    meta = {
        META_CONNECTOR: connector.name,
        META_BRAND: binding.brand_id,
        META_LABEL: binding.label,
        **({META_KEY: request.key} if request.key else {}),
        **({META_STORE: binding.store_id} if binding.store_id else {}),
        **({META_CHANNEL: binding.channel} if binding.channel else {}),
        META_METHOD: request.method,
        **({META_ENCODING: request.headers["content-encoding"]} if request.headers.get("content-encoding") else {}),
        **connector.archive_meta(request),
    }
    raw_key = ports.archive.archive(request.request_id, request.body, request.received_at, connector.name, meta)
    mapped = connector.map(_with_body(request, body), binding)
    scope = WriteScope(load_org(), (ScopeRef(brand_id=binding.brand_id),))  # a source writes for its own brand only
    return Received(result=_accept(mapped, request, raw_key, ports, scope), reply=mapped.reply)


def _with_body(request: InboundRequest, body: bytes) -> InboundRequest:
    if body is request.body:
        return request
    headers = {k: v for k, v in request.headers.items() if k != "content-encoding"}
    return InboundRequest(
        connector=request.connector,
        method=request.method,
        body=body,
        received_at=request.received_at,
        request_id=request.request_id,
        key=request.key,
        headers=headers,
        query=request.query,
        source_ip=request.source_ip,
    )


def _accept(
    mapped: Mapped, request: InboundRequest, raw_key: str, ports: Ports, write_scope: WriteScope
) -> IngestResult:
    return accept(
        mapped.items,
        request_id=request.request_id,
        received_at=request.received_at,
        raw_key=raw_key,
        ledger=ports.ledger,
        publisher=ports.publisher,
        region_of=ports.region_of,
        prefix="batch." if mapped.batch else "",
        origins=mapped.origins,
        rejected=mapped.rejected,
        kept_as_custom=mapped.kept_as_custom,
        write_scope=write_scope,
    )
