"""RFC 9162 Merkle trees: known answers, generation against verification, tampering, compact ranges."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors
from protocol.errors import MalformedError, ProofError
from protocol.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    SubtreeLookup,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_hash,
    range_subtrees,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# Known answers: transparency-dev/merkle proof/verify_test.go and testdata/ (the
# Certificate Transparency vectors). Their inclusion vectors number leaves from 1;
# here indexes are 0-based.
KAT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
KAT_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
_H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "b086": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
}


def _p(*keys: str) -> list[bytes]:
    return [bytes.fromhex(_H[k]) for k in keys]


KAT_INCLUSION = [
    (0, 1, []),
    (0, 8, _p("96a2", "5f08", "6b47")),
    (5, 8, _p("bc1a", "ca85", "d37e")),
    (2, 3, _p("fac5")),
    (1, 5, _p("6e34", "5f08", "bc1a")),
]
KAT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, _p("96a2", "5f08", "6b47")),
    (6, 8, _p("0ebc", "ca85", "d37e")),
    (2, 5, _p("5f08", "bc1a")),
    (6, 7, _p("0ebc", "b086", "d37e")),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

# One big tree; every smaller tree is a prefix of it, so one level array serves all sizes.
N = 300
LEAVES = KAT_LEAVES + [hashlib.sha256(i.to_bytes(4, "big")).digest()[: i % 40] for i in range(len(KAT_LEAVES), N)]
LEVELS: list[list[bytes]] = [[leaf_hash(d) for d in LEAVES]]
while len(LEVELS[-1]) > 1:
    below = LEVELS[-1]
    LEVELS.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])


def lookup_for(size: int) -> SubtreeLookup:
    """A lookup that only answers for subtrees complete within the first ``size`` leaves."""

    def lookup(level: int, index: int) -> bytes:
        assert (index + 1) << level <= size, "asked for a subtree beyond the tree"
        return LEVELS[level][index]

    return lookup


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.1, literally."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]), literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b), literally."""
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def test_proof_error_is_registered() -> None:
    assert ProofError in errors.ALL_ERRORS
    assert (ProofError.code, ProofError.http_status) == ("E_BAD_PROOF", 422)


def test_hash_primitives() -> None:
    assert HASH_SIZE == 32
    assert EMPTY_ROOT == KAT_ROOTS[0] == hashlib.sha256(b"").digest()
    assert leaf_hash(b"") == KAT_ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == KAT_ROOTS[2]


@pytest.mark.parametrize("size", range(9))
def test_known_roots(size: int) -> None:
    assert root_hash(size, lookup_for(size)) == KAT_ROOTS[size] == ref_mth(KAT_LEAVES[:size])
    cr = CompactRange()
    for data in KAT_LEAVES[:size]:
        cr.append(leaf_hash(data))
    assert cr.root() == KAT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), KAT_INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    assert inclusion_proof(index, size, lookup_for(size)) == proof
    leaf, root = leaf_hash(KAT_LEAVES[index]), KAT_ROOTS[size]
    verify_inclusion(index, size, leaf, proof, root)
    probes: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, leaf_hash(b"WrongLeaf"), proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, SOME_HASH),
        (index, size, leaf, [*proof, b""], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [b"", *proof], root),
        (index, size, leaf, [root, *proof], root),
    ]
    if leaf != root:
        probes.append((index, size, root, proof, leaf))
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, leaf, flipped, root))
    if proof:
        probes.append((index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root))
    for probe in probes:
        with pytest.raises(ProofError):
            verify_inclusion(*probe)


@pytest.mark.parametrize(("first", "second", "proof"), KAT_CONSISTENCY)
def test_known_consistency_proofs(first: int, second: int, proof: list[bytes]) -> None:
    assert consistency_proof(first, second, lookup_for(second)) == proof
    r1, r2 = KAT_ROOTS[first], KAT_ROOTS[second]
    verify_consistency(first, second, r1, r2, proof)
    if not proof:
        return
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (first - 1, second, r1, r2, proof),
        (first + 1, second, r1, r2, proof),
        (first ^ 2, second, r1, r2, proof),
        (first, second * 2, r1, r2, proof),
        (first, second // 2, r1, r2, proof),
        (first, second, SOME_HASH, r2, proof),
        (first, second, r1, SOME_HASH, proof),
        (first, second, r2, r1, proof),
        (first, second, r1, r2, []),
        (first, second, r1, r2, [*proof, b""]),
        (first, second, r1, r2, [*proof, r1]),
        (first, second, r1, r2, [*proof, r2]),
        (first, second, r1, r2, [b"", *proof]),
        (first, second, r1, r2, [r1, *proof]),
        (first, second, r1, r2, [r2, *proof]),
        (first, second, r1, r2, [proof[0], *proof]),
        (first, second, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((first, second, r1, r2, flipped))
    for probe in probes:
        with pytest.raises(ProofError):
            verify_consistency(*probe)


def test_generation_matches_the_rfc_definitions() -> None:
    for size in range(1, 65):
        lookup = lookup_for(size)
        assert root_hash(size, lookup) == ref_mth(LEAVES[:size])
        for index in range(size):
            assert inclusion_proof(index, size, lookup) == ref_path(index, LEAVES[:size])
        for first in range(1, size):
            assert consistency_proof(first, size, lookup) == ref_subproof(first, LEAVES[:size], True)


def test_every_inclusion_proof_up_to_300_verifies() -> None:
    for size in range(1, N + 1):
        lookup = lookup_for(size)
        root = root_hash(size, lookup)
        for index in range(size):
            proof = inclusion_proof(index, size, lookup)
            assert len(proof) == len(inclusion_ranges(index, size))
            verify_inclusion(index, size, LEVELS[0][index], proof, root)
            if size <= 40:
                with pytest.raises(ProofError):
                    verify_inclusion(index, size, LEVELS[0][(index + 1) % size] if size > 1 else SOME_HASH, proof, root)
                for i in range(len(proof)):
                    with pytest.raises(ProofError):
                        verify_inclusion(index, size, LEVELS[0][index], [*proof[:i], SOME_HASH, *proof[i + 1 :]], root)


def test_every_consistency_proof_up_to_300_verifies() -> None:
    roots = [root_hash(size, lookup_for(size)) for size in range(N + 1)]
    for second in range(N + 1):
        lookup = lookup_for(second)
        for first in range(second + 1):
            proof = consistency_proof(first, second, lookup)
            verify_consistency(first, second, roots[first], roots[second], proof)
            if 0 < first < second <= 40:
                with pytest.raises(ProofError):
                    verify_consistency(first, second, roots[second], roots[first], proof)
                for i in range(len(proof)):
                    with pytest.raises(ProofError):
                        verify_consistency(first, second, roots[first], roots[second], [*proof[:i], SOME_HASH, *proof[i + 1 :]])
                for short in (proof[:-1], proof[1:], [*proof, SOME_HASH]):
                    with pytest.raises(ProofError):
                        verify_consistency(first, second, roots[first], roots[second], short)


def test_consistency_edge_cases() -> None:
    a, b = KAT_ROOTS[3], KAT_ROOTS[4]
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 4, EMPTY_ROOT, b, [])
    verify_consistency(3, 3, a, a, [])
    bad: list[tuple[object, ...]] = [
        (0, 0, EMPTY_ROOT, a, []),
        (0, 4, a, b, []),  # the empty tree has one root
        (0, 4, EMPTY_ROOT, b, [EMPTY_ROOT]),
        (3, 3, a, b, []),
        (3, 3, a, a, [a]),
        (4, 3, b, a, []),
        (1, 0, a, EMPTY_ROOT, []),
        (1, 2, KAT_ROOTS[1], KAT_ROOTS[2], []),
        (3, 4, a, b, None),
        (3, 4, a, b, b"x" * 32),
        (3, 4, a, b, "proof"),
        (3, 4, a[:31], b, [a]),
        (3, 4, a, "b", [a]),
        (True, 4, a, b, [a]),
        (-1, 4, a, b, [a]),
        (3, 1 << 64, a, b, [a]),
        (3, 4, a, b, [bytearray(a)]),
    ]
    for args in bad:
        with pytest.raises(ProofError):
            verify_consistency(*args)  # type: ignore[arg-type]


def test_inclusion_edge_cases() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(0, 1, leaf, [], leaf)
    bad: list[tuple[object, ...]] = [
        (0, 0, leaf, [], leaf),
        (1, 1, leaf, [], leaf),
        (2, 1, leaf, [], leaf),
        (0, 1, leaf, [leaf], leaf),
        (0, 1, b"", [], leaf),
        (0, 1, leaf, [], b""),
        (0, 1, leaf, [], EMPTY_ROOT),
        (0, 1, leaf, (), 5),
        (0, 1, leaf, leaf, leaf),
        (0, 1, leaf, iter([]), leaf),
        (0.0, 1, leaf, [], leaf),
        (0, False, leaf, [], leaf),
        (-1, 1, leaf, [], leaf),
    ]
    for args in bad:
        with pytest.raises(ProofError):
            verify_inclusion(*args)  # type: ignore[arg-type]
    # A tree of 2**64 - 1 leaves: an in-range size, but a short proof.
    with pytest.raises(ProofError):
        verify_inclusion((1 << 64) - 2, (1 << 64) - 1, leaf, [leaf] * 3, leaf)


def test_range_subtrees_is_the_binary_decomposition_of_aligned_ranges() -> None:
    assert range_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert range_subtrees(8, 16) == [(3, 1)]
    assert range_subtrees(12, 15) == [(1, 6), (0, 14)]
    assert range_subtrees(5, 6) == [(0, 5)]
    assert range_subtrees(0, 0) == range_subtrees(3, 3) == []
    assert range_hash(3, 3, lookup_for(0)) == range_hash(0, 0, lookup_for(0)) == EMPTY_ROOT
    assert range_subtrees(0, (1 << 64) - 1)[0] == (63, 0)
    for size in range(1, 70):
        for start, end in [(0, size), *inclusion_ranges(size - 1, size), *consistency_ranges(size // 2, size)]:
            parts = range_subtrees(start, end)
            assert sum(1 << level for level, _ in parts) == end - start
            assert (parts[0][1] << parts[0][0]) == start
            assert range_hash(start, end, lookup_for(size)) == ref_mth(LEAVES[start:end])


@pytest.mark.parametrize(("start", "end"), [(4, 2), (1, 0), (1, 3), (2, 5), (4, 9), (-1, 1), (0, 1 << 64), (True, 2), (0, 2.0)])
def test_range_subtrees_refuses_reversed_and_unaligned_ranges(start: int, end: int) -> None:
    with pytest.raises(MalformedError):
        range_subtrees(start, end)


def test_generation_refuses_impossible_arguments() -> None:
    lookup = lookup_for(N)
    for call in (
        lambda: inclusion_ranges(3, 3),
        lambda: inclusion_ranges(0, 0),
        lambda: inclusion_ranges(-1, 3),
        lambda: consistency_ranges(4, 3),
        lambda: consistency_ranges(0, -1),
        lambda: inclusion_proof(5, 5, lookup),
        lambda: consistency_proof(6, 5, lookup),
        lambda: root_hash(-1, lookup),
        lambda: root_hash(3, lambda level, index: b"short"),
        lambda: range_hash(0, 2, lambda level, index: "not bytes"),  # type: ignore[arg-type,return-value]
    ):
        with pytest.raises(MalformedError):
            call()
    assert consistency_ranges(0, 5) == consistency_ranges(5, 5) == []
    assert inclusion_ranges(0, 1) == []
    assert root_hash(0, lookup) == EMPTY_ROOT


def test_compact_range_agrees_with_root_hash_for_every_size_up_to_300() -> None:
    cr = CompactRange()
    stored: dict[tuple[int, int], bytes] = {}
    for size in range(N + 1):
        assert cr.size == size
        assert cr.root() == root_hash(size, lookup_for(size))
        assert cr.subtrees() == [(level, index, LEVELS[level][index]) for level, index in (range_subtrees(0, size) if size else [])]
        assert CompactRange.from_subtrees(size, lookup_for(size)) == cr
        assert CompactRange(size=size, hashes=cr.hashes) == cr
        if size < N:
            new = cr.append(LEVELS[0][size])
            assert new[0] == (0, size, LEVELS[0][size])
            assert [level for level, _, _ in new] == list(range(len(new)))
            for level, index, h in new:
                assert LEVELS[level][index] == h and (level, index) not in stored
                stored[(level, index)] = h
    # Every perfect subtree of the final tree was reported exactly once.
    assert set(stored) == {(level, index) for level, row in enumerate(LEVELS) for index in range(len(row))}


def test_compact_range_validation_and_value_semantics() -> None:
    h = leaf_hash(b"x")
    for size, hashes in [(1, ()), (3, (h,)), (2, (h, h)), (1, (b"short",)), (-1, ()), (1, h), (1, "h"), (1, None)]:
        with pytest.raises(MalformedError):
            CompactRange(size=size, hashes=hashes)  # type: ignore[arg-type]
    cr = CompactRange(size=1, hashes=(h,))
    other = cr.copy()
    other.append(h)
    assert cr.size == 1 and other.size == 2 and cr != other
    assert cr == CompactRange(size=1, hashes=[h])
    assert cr != "CompactRange" and "size=1" in repr(cr) and cr.root().hex() in repr(cr)
    with pytest.raises(TypeError):
        hash(cr)
    with pytest.raises(MalformedError):
        cr.append(b"short")
    full = CompactRange(size=(1 << 64) - 1, hashes=[h] * 64)
    with pytest.raises(MalformedError, match="full"):
        full.append(h)
    assert CompactRange.from_subtrees(0, lookup_for(0)) == CompactRange()
    assert CompactRange().root() == EMPTY_ROOT and CompactRange().subtrees() == []


def _tree(leaves: list[bytes]) -> tuple[CompactRange, Callable[[int, int], bytes]]:
    cr = CompactRange()
    store: dict[tuple[int, int], bytes] = {}
    for data in leaves:
        for level, index, h in cr.append(leaf_hash(data)):
            store[(level, index)] = h
    return cr, lambda level, index: store[(level, index)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=150), st.data())
def test_inclusion_property(leaves: list[bytes], data: st.DataObject) -> None:
    cr, lookup = _tree(leaves)
    assert cr.root() == ref_mth(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = inclusion_proof(index, len(leaves), lookup)
    verify_inclusion(index, len(leaves), leaf_hash(leaves[index]), proof, cr.root())
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        element = bytearray(proof[i])
        element[bit // 8] ^= 1 << (bit % 8)
        tampered = [*proof[:i], bytes(element), *proof[i + 1 :]]
        with pytest.raises(ProofError):
            verify_inclusion(index, len(leaves), leaf_hash(leaves[index]), tampered, cr.root())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=150), st.data())
def test_consistency_property(leaves: list[bytes], data: st.DataObject) -> None:
    second = len(leaves)
    first = data.draw(st.integers(0, second))
    cr, lookup = _tree(leaves)
    first_root = ref_mth(leaves[:first])
    proof = consistency_proof(first, second, lookup)
    verify_consistency(first, second, first_root, cr.root(), proof)
    forked = [*leaves[: first - 1], b"fork", *leaves[first:]] if first else leaves
    if first and forked != leaves:
        with pytest.raises(ProofError):
            verify_consistency(first, second, first_root, ref_mth(forked), proof)
