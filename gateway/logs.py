"""structlog set-up: one JSON object per line on stderr, for machines and log shippers.

Events carry ``message_id``, ``origin``, ``destination`` and ``hop`` where they
apply; nothing ever logs plaintext alert content or key material (the hop never
sees plaintext, and keys are excluded from every ``repr``).
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, member: str, json_logs: bool = True, level: str = "info") -> None:
    """Route structlog (and stdlib logging, e.g. aiohttp's) to stderr, as JSON by default."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr, format="%(message)s")
    renderer: structlog.types.Processor = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(hop=member)
