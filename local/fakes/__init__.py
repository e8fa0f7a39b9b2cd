"""Fake providers on the loopback that speak the real protocols (a subset): the local runtime, the demo and the
tests exercise the real sender code over real HTTP against them."""
