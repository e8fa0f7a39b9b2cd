"""One construct per concern; `infra.stack.CdpStack` composes them.

Careful: this package shares its name with the `constructs` library. `infra/app.py` removes its own directory from
`sys.path` when run as a script so `import constructs` keeps resolving to the library.
"""
