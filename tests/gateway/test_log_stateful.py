"""Hypothesis stateful test: appends, restarts and proof requests in any order always verify."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.log_store import LogStore
from protocol.checkpoint import Checkpoint
from protocol.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.support.logs import open_store, parse


class LogMachine(RuleBasedStateMachine):
    """The model is the list of leaves; every signed checkpoint must agree with it."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="hg-log-"))
        self.path = self.dir / "log.db"
        self.leaves: list[bytes] = []
        self.seen: list[Checkpoint] = []
        self.store: LogStore | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize()
    def start(self) -> None:
        self.store = self.run(open_store(self.path))

    @rule(leaves=st.lists(st.binary(max_size=40), min_size=1, max_size=12))
    def append(self, leaves: list[bytes]) -> None:
        assert self.store is not None
        store = self.store

        async def append_all() -> list[int]:
            return list(await asyncio.gather(*(store.append(leaf) for leaf in leaves)))

        indices = self.run(append_all())
        assert sorted(indices) == list(range(len(self.leaves), len(self.leaves) + len(leaves)))
        for index, leaf in sorted(zip(indices, leaves, strict=True)):
            self.leaves.append(leaf)
            assert index == len(self.leaves) - 1
        self.seen.append(parse(self.run(self.store.checkpoint())))

    @rule()
    def restart(self) -> None:
        assert self.store is not None
        self.run(self.store.close())
        self.store = self.run(open_store(self.path))

    @precondition(lambda self: bool(self.leaves))
    @rule(data=st.data())
    def prove_inclusion(self, data: st.DataObject) -> None:
        assert self.store is not None
        cp = data.draw(st.sampled_from([c for c in self.seen if c.size]))
        index = data.draw(st.integers(min_value=0, max_value=cp.size - 1))
        proof = self.run(self.store.inclusion_proof(index, cp.size))
        verify_inclusion(index, cp.size, leaf_hash(self.leaves[index]), proof, cp.root)

    @precondition(lambda self: len(self.seen) >= 2)
    @rule(data=st.data())
    def prove_consistency(self, data: st.DataObject) -> None:
        assert self.store is not None
        a, b = sorted(data.draw(st.lists(st.sampled_from(self.seen), min_size=2, max_size=2)), key=lambda c: c.size)
        proof = self.run(self.store.consistency_proof(a.size, b.size))
        verify_consistency(a.size, b.size, a.root, b.root, proof)

    @invariant()
    def head_matches_model(self) -> None:
        if self.store is not None:
            assert self.run(self.store.size()) == len(self.leaves)

    def teardown(self) -> None:
        if self.store is not None:
            self.run(self.store.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


LogMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
TestLogMachine = LogMachine.TestCase
