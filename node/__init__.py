"""Heliograph node: an agency server, its officer API, console and CLI."""
