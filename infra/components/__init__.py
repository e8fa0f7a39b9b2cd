"""One construct per concern; `infra.stack.CdpStack` composes them."""
