"""Channel connectors: each one accepts a channel's own payloads (Segment calls, WeChat XML, Shopify webhooks, ...)
and maps them to canonical events. `service.receive` runs every inbound request through the same hardened path."""
