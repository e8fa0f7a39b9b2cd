"""The application layer: the HTTP APIs' request parsing, views and the orchestration across contexts (a profile
edit resolves identity; an erasure reaches every context). Contexts never import it; handlers do."""
