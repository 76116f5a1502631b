"""The archive's Merkle tree in the shape of RFC 9162 (Certificate Transparency 2.0) 2.1:
leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right), a tree of n
leaves split at the largest power of two below n. Pure functions over leaf hashes, and a
`Frontier` that appends leaves one at a time and knows the root at every size."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # the root of the tree of no leaves


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 2.1.1, over leaf hashes."""
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1: the hashes that lead from leaf `index` to the root
    of the tree of `leaves` (leaf hashes)."""
    return Tree(leaves).path(index)


_UNCACHED = 64  # leaves under which a subtree's root is not kept


class Tree:
    """A tree over its leaf hashes, whose subtree roots are computed once however many
    proofs need them: the proofs of k leaves of a tree of n cost O(n + k log n) hashes."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self._roots: dict[tuple[int, int], bytes] = {}

    def root(self, start: int = 0, end: int | None = None) -> bytes:
        """MTH of leaves[start:end]."""
        end = len(self.leaves) if end is None else end
        if end - start <= _UNCACHED:  # hashed again when asked again: cheaper than kept
            return root_of(self.leaves[start:end])
        known = self._roots.get((start, end))
        if known is None:
            k = start + _split(end - start)
            known = node_hash(self.root(start, k), self.root(k, end))
            self._roots[(start, end)] = known
        return known

    def path(self, index: int) -> list[bytes]:
        """PATH(index, D[n]): from the leaf up, each sibling's root."""
        if not 0 <= index < len(self.leaves):
            raise ValueError(f"leaf {index} is not in a tree of {len(self.leaves)}")
        proof: list[bytes] = []
        start, end = 0, len(self.leaves)
        while end - start > 1:
            k = start + _split(end - start)
            if index < k:
                proof.append(self.root(k, end))
                end = k
            else:
                proof.append(self.root(start, k))
                start = k
        proof.reverse()
        return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: whether `leaf` (a leaf hash) is leaf `index` of the tree of `size`
    leaves whose root is `root`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1: what shows that the tree of the first `old_size`
    leaves is a prefix of the tree of all `leaves`."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"no proof from size {old_size} to {len(leaves)}")
    proof: list[bytes] = []
    _subproof(old_size, leaves, True, proof)
    return proof


def _subproof(m: int, leaves: Sequence[bytes], whole: bool, proof: list[bytes]) -> None:
    n = len(leaves)
    if m == n:
        if not whole:
            proof.append(root_of(leaves))
        return
    k = _split(n)
    if m <= k:
        _subproof(m, leaves[:k], whole, proof)
        proof.append(root_of(leaves[k:]))
    else:
        _subproof(m - k, leaves[k:], False, proof)
        proof.append(root_of(leaves[:k]))


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: whether the tree of `old_size` leaves and root `old_root` is a prefix
    of the tree of `new_size` leaves and root `new_root`."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest first
    (one per bit set in its size). Appending a leaf costs O(1) hashes on average, the root
    O(log n): a log of millions of leaves is followed without holding them."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} subtrees")
        self.size = size
        self._hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        """Adds a leaf hash."""
        hashes = self._hashes
        hashes.append(leaf)
        size = self.size
        while size & 1:  # each carry merges two subtrees of the same size
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            size >>= 1
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root

    def to_bytes(self) -> bytes:
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        if len(data) % HASH_SIZE:
            raise ValueError("a frontier is a run of 32-byte hashes")
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, hashes)
