"""Heliograph's pure protocol core.

Canonical encoding, keys, roster, envelopes, receipts and errors. This package
does no I/O: no sockets, files, clocks or global randomness. Time and
randomness are parameters, so every output is reproducible in test vectors and
an oversight body can install and audit this package alone.
"""

__all__: list[str] = []
