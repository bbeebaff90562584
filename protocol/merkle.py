"""RFC 9162 Merkle tree hashing, proofs and compact ranges for the hop logs.

Every member keeps an append-only log of the receipts it issued (leaves are the
signed receipt wire bytes). This module is the arithmetic of that log, with no
storage of its own:

* Hashing is RFC 9162 section 2.1.1: ``leaf_hash(d) = SHA-256(0x00 || d)``,
  ``node_hash(l, r) = SHA-256(0x01 || l || r)``, the empty tree hashes to
  ``SHA-256("")`` and a tree of ``n > 1`` leaves splits at ``k``, the largest
  power of two smaller than ``n``.
* A store keeps only *perfect subtrees*: ``(level, index)`` names the subtree
  over leaves ``[index * 2**level, (index + 1) * 2**level)``. An appender feeds
  :class:`CompactRange` one leaf hash at a time and stores every subtree that
  :meth:`CompactRange.append` reports complete (amortised two writes per leaf).
* Roots and proofs come from a :data:`SubtreeLookup` over those subtrees: every
  hash an RFC proof needs is of an *aligned* range (:func:`range_subtrees`), a
  right fold of O(log n) perfect subtrees.
* :func:`verify_inclusion` and :func:`verify_consistency` are RFC 9162 sections
  2.1.3.2 and 2.1.4.2 step for step, plus the edge cases the RFC leaves out. They
  raise :class:`~protocol.errors.ProofError` on every failure and nothing else.

Generation functions refuse impossible arguments (an index past the tree, a
range that no RFC proof uses) with :class:`~protocol.errors.MalformedError`;
those are caller or request errors, not bad proofs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from protocol.errors import MalformedError, ProofError
from protocol.fields import U64_MAX

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree, ``SHA-256("")``."""

SubtreeLookup = Callable[[int, int], bytes]
"""``lookup(level, index)`` returns the hash of the perfect subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _size(where: str, value: object) -> int:
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise MalformedError(f"{where}: expected an integer from 0 to 2**64 - 1")
    return value


def _split(n: int) -> int:  # the RFC's k: the largest power of two below n >= 2
    return 1 << ((n - 1).bit_length() - 1)


def range_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Return the perfect subtrees whose right fold is ``MTH(D[start:end])``.

    Only *aligned* ranges are accepted: ``start`` is a multiple of the smallest
    power of two ``>= end - start``. These are exactly the ranges that occur as
    nodes of an RFC 9162 tree of any size: the whole tree ``[0, n)``, every
    element of an inclusion or consistency proof, and every sub-range reached by
    the RFC split. For such a range the split always yields a perfect left part,
    so the result is the binary decomposition of ``end - start`` from the
    largest subtree (leftmost) to the smallest. An empty range has none.

    Returns:
        ``(level, index)`` pairs, left to right.

    Raises:
        MalformedError: Not integers, a reversed range, or an unaligned range.
    """
    _size("start", start)
    _size("end", end)
    n = end - start
    if n < 0:
        raise MalformedError(f"range [{start}, {end}) is reversed")
    if n and start % (1 << (n - 1).bit_length()):
        raise MalformedError(f"range [{start}, {end}) is not aligned to a subtree boundary")
    out: list[tuple[int, int]] = []
    while end - start > 0:
        level = (end - start).bit_length() - 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def _lookup(subtree: SubtreeLookup, level: int, index: int) -> bytes:
    value = subtree(level, index)
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise MalformedError(f"subtree lookup ({level}, {index}) did not return a {HASH_SIZE}-byte hash")
    return value


def _fold(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT  # MTH({}) = SHA-256()
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def range_hash(start: int, end: int, subtree: SubtreeLookup) -> bytes:
    """Return ``MTH(D[start:end])`` for an aligned range (:data:`EMPTY_ROOT` if empty; see :func:`range_subtrees`).

    Raises:
        MalformedError: An invalid range, or a lookup that returns no 32-byte hash.
    """
    return _fold([_lookup(subtree, level, index) for level, index in range_subtrees(start, end)])


def root_hash(size: int, subtree: SubtreeLookup) -> bytes:
    """Return the root of the tree of the first ``size`` leaves (:data:`EMPTY_ROOT` for 0).

    Raises:
        MalformedError: ``size`` out of range, or a bad lookup result.
    """
    return range_hash(0, _size("size", size), subtree)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges of the RFC 9162 ``PATH(index, D[0:size])``, in proof order.

    Element ``i`` of an inclusion proof is ``MTH(D[start:end])`` of range ``i``;
    the list runs from the leaf's sibling up to the root's other child.

    Raises:
        MalformedError: ``index >= size`` or values out of range.
    """
    _size("index", index)
    if index >= _size("size", size):
        raise MalformedError(f"leaf index {index} is not in a tree of size {size}")
    lo, hi = 0, size
    siblings: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    siblings.reverse()
    return siblings


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Return the leaf ranges of the RFC 9162 ``PROOF(first, D[0:second])``, in proof order.

    Empty when ``first`` is 0 or equal to ``second`` (nothing to prove).

    Raises:
        MalformedError: ``first > second`` or values out of range.
    """
    _size("first", first)
    if first > _size("second", second):
        raise MalformedError(f"tree size {first} is larger than {second}")
    if first in (0, second):
        return []
    lo, hi, m = 0, second, first
    whole_first_tree_known = True  # the RFC's SUBPROOF flag b
    nodes: list[tuple[int, int]] = []
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            nodes.append((lo + k, hi))
            hi = lo + k
        else:
            nodes.append((lo, lo + k))
            lo += k
            m -= k
            whole_first_tree_known = False
    if not whole_first_tree_known:
        nodes.append((lo, hi))
    nodes.reverse()
    return nodes


def inclusion_proof(index: int, size: int, subtree: SubtreeLookup) -> list[bytes]:
    """Return the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Raises:
        MalformedError: As :func:`inclusion_ranges`, or a bad lookup result.
    """
    return [range_hash(start, end, subtree) for start, end in inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, subtree: SubtreeLookup) -> list[bytes]:
    """Return the consistency proof from the tree of ``first`` leaves to that of ``second``.

    Raises:
        MalformedError: As :func:`consistency_ranges`, or a bad lookup result.
    """
    return [range_hash(start, end, subtree) for start, end in consistency_ranges(first, second)]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _check_args(sizes: tuple[object, ...], hashes: tuple[object, ...], proof: object) -> list[bytes]:
    if not all(type(s) is int and 0 <= s <= U64_MAX for s in sizes):
        raise ProofError("tree sizes and indexes must be integers from 0 to 2**64 - 1")
    if not all(_is_hash(h) for h in hashes):
        raise ProofError(f"leaf and root hashes must be {HASH_SIZE} bytes")
    if isinstance(proof, (str, bytes)) or not isinstance(proof, Sequence):
        raise ProofError("a proof is a sequence of hashes")
    if not all(_is_hash(p) for p in proof):
        raise ProofError(f"every proof element must be {HASH_SIZE} bytes")
    return list(proof)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Verify that ``leaf`` (a *leaf hash*) is leaf ``index`` of the tree with ``root``.

    This is RFC 9162 section 2.1.3.2 exactly; a tree of one leaf has an empty
    proof and a root equal to the leaf hash.

    Raises:
        ProofError: On any failure: ``index >= size``, a proof of the wrong
            length, hashes of the wrong length or a root mismatch.
    """
    path = _check_args((index, size), (leaf, root), proof)
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """Verify that the tree of ``first`` leaves is a prefix of the tree of ``second`` leaves.

    For ``0 < first < second`` this is RFC 9162 section 2.1.4.2 exactly. The
    cases the RFC leaves out: ``first == second`` needs an empty proof and
    equal roots; ``first == 0`` needs an empty proof and ``first_root ==
    EMPTY_ROOT`` (every tree extends the empty tree).

    Raises:
        ProofError: On any failure, including ``first > second``, a proof of
            the wrong length, hashes of the wrong length or a root mismatch.
    """
    path = _check_args((first, second), (first_root, second_root), proof)
    if first > second:
        raise ProofError(f"tree size {first} is larger than {second}")
    if first in (0, second):
        if path:
            raise ProofError("a consistency proof from an empty or equal tree must be empty")
        if first == 0 and first_root != EMPTY_ROOT:
            raise ProofError("the root of the empty tree is SHA-256 of the empty string")
        if first == second and first_root != second_root:
            raise ProofError("trees of equal size have different roots")
        return
    if not path:
        raise ProofError("consistency proof is empty")
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root or sr != second_root:
        raise ProofError("consistency proof does not lead to both roots")


def _hash_list(value: object, count: int) -> list[bytes]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != count or not all(_is_hash(h) for h in value):
        raise MalformedError(f"a compact range of this size holds exactly {count} hashes of {HASH_SIZE} bytes")
    return list(value)


class CompactRange:
    """The right edge of a tree: the perfect subtrees that make up leaves ``[0, size)``.

    One hash per set bit of ``size``, largest (leftmost) first. An appender keeps
    one and stores what :meth:`append` reports; a verifier recomputes roots with it
    in O(log n) memory. A mutable accumulator, not a wire model, but it validates.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, *, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Create a range from its size and left-to-right subtree hashes.

        Raises:
            MalformedError: ``size`` out of range, or not one 32-byte hash per
                set bit of ``size``.
        """
        self._size = _size("size", size)
        self._hashes = _hash_list(hashes, size.bit_count())

    @classmethod
    def from_subtrees(cls, size: int, subtree: SubtreeLookup) -> CompactRange:
        """Rebuild the compact range of the first ``size`` leaves from stored subtrees.

        Raises:
            MalformedError: ``size`` out of range, or a bad lookup result.
        """
        return cls(size=size, hashes=[_lookup(subtree, level, index) for level, index in range_subtrees(0, size)])

    @property
    def size(self) -> int:
        """The number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree hashes, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash and return every perfect subtree it completes.

        Returns:
            ``(level, index, hash)`` triples bottom-up, starting with the leaf
            itself at level 0.

        Raises:
            MalformedError: ``leaf_hash`` is not 32 bytes, or the tree is full.
        """
        if not _is_hash(leaf_hash):
            raise MalformedError(f"leaf hash must be {HASH_SIZE} bytes")
        if self._size == U64_MAX:
            raise MalformedError("tree is full")
        index, level, acc = self._size, 0, leaf_hash
        completed = [(0, index, acc)]
        while (self._size >> level) & 1:
            acc = node_hash(self._hashes.pop(), acc)
            level += 1
            index >>= 1
            completed.append((level, index, acc))
        self._hashes.append(acc)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """Return the root hash of the first :attr:`size` leaves."""
        return _fold(self._hashes)

    def subtrees(self) -> list[tuple[int, int, bytes]]:
        """Return the ``(level, index, hash)`` triples of the range, left to right."""
        return [(level, index, h) for (level, index), h in zip(range_subtrees(0, self._size), self._hashes, strict=True)]

    def copy(self) -> CompactRange:
        """Return an independent copy (appending to it leaves this one unchanged)."""
        return CompactRange(size=self._size, hashes=self._hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
