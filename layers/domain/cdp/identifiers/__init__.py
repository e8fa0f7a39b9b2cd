"""Identifiers: what a person is known by in each channel (normalized values) and the rules for linking them."""
