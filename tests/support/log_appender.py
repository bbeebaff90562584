"""A log-appending process for crash tests: ``python -m tests.support.log_appender DB COUNT``.

Appends COUNT leaves in concurrent waves and prints ``ack INDEX HEX`` for every
append that returned (i.e. committed), flushing each line, so the parent can
SIGKILL it at any moment and know exactly what was acknowledged.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.support.logs import open_store


async def main(db: Path, count: int) -> None:
    store = await open_store(db, synchronous="FULL")
    wave = 25
    for start in range(0, count, wave):
        leaves = [f"leaf-{i:06d}".encode() * 10 for i in range(start, min(start + wave, count))]
        indices = await asyncio.gather(*(store.append(leaf) for leaf in leaves))
        for index, leaf in zip(indices, leaves, strict=True):
            sys.stdout.write(f"ack {index} {leaf.hex()}\n")
        sys.stdout.flush()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
