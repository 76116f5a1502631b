"""The archive's Merkle tree against RFC 6962's reference tree (the Certificate Transparency
test vectors: eight leaves, the roots of every size, inclusion and consistency proofs), and
every proof of trees of every shape up to 40 leaves, with each tampering refused."""

from __future__ import annotations

import pytest

from gateway.core.merkle import (
    EMPTY_ROOT,
    Frontier,
    Tree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f")
]  # fmt: skip
ROOTS = [
    bytes.fromhex(h)
    for h in (
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
HASHES = [leaf_hash(leaf) for leaf in LEAVES]
INCLUSION = [  # (leaf index, tree size, proof)
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def test_roots_of_the_reference_tree() -> None:
    assert root_of([]) == EMPTY_ROOT
    for size in range(1, 9):
        assert root_of(HASHES[:size]) == ROOTS[size - 1]


def test_the_frontier_knows_every_root_and_survives_storage() -> None:
    frontier = Frontier()
    for size, leaf in enumerate(HASHES, start=1):
        frontier.append(leaf)
        assert (frontier.size, frontier.root()) == (size, ROOTS[size - 1])
        again = Frontier.from_bytes(frontier.size, frontier.to_bytes())
        assert again.root() == ROOTS[size - 1]
    with pytest.raises(ValueError):
        Frontier(3, [HASHES[0]])  # a tree of 3 leaves has two perfect subtrees


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_of_the_reference_tree(index: int, size: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert inclusion_proof(HASHES[:size], index) == expected
    assert verify_inclusion(HASHES[index], index, size, expected, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_of_the_reference_tree(old: int, new: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert consistency_proof(HASHES[:new], old) == expected
    assert verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], expected)


def _flipped(proof: list[bytes], at: int) -> list[bytes]:
    changed = bytearray(proof[at])
    changed[0] ^= 1
    return [*proof[:at], bytes(changed), *proof[at + 1 :]]


def test_every_proof_of_every_shape_verifies_and_no_tampering_does() -> None:
    leaves = [leaf_hash(bytes([n, n * 7 % 256])) for n in range(40)]
    for size in range(1, len(leaves) + 1):
        tree, root = leaves[:size], root_of(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(tree, index)
            assert verify_inclusion(tree[index], index, size, proof, root)
            assert not verify_inclusion(tree[index], index, index, proof, root)
            assert not verify_inclusion(leaf_hash(b"other"), index, size, proof, root)
            if proof:
                assert not verify_inclusion(tree[index], index, size, _flipped(proof, 0), root)
                assert not verify_inclusion(tree[index], index, size, proof[:-1], root)
        for old in range(1, size + 1):
            old_root = root_of(leaves[:old])
            proof = consistency_proof(tree, old)
            assert verify_consistency(old, size, old_root, root, proof)
            if old < size:
                assert not verify_consistency(old, size, root, old_root, proof)
                assert not verify_consistency(old, size, old_root, root, _flipped(proof, -1))
                assert not verify_consistency(old, size, old_root, root, [])
                wrong = root_of([leaf_hash(b"x"), *leaves[1:old]])
                assert not verify_consistency(old, size, wrong, root, proof)


@pytest.mark.parametrize("size", [64, 65, 130, 257, 1000])
def test_large_trees_keep_their_subtree_roots_and_prove_every_leaf(size: int) -> None:
    leaves = [leaf_hash(n.to_bytes(4, "big")) for n in range(size)]
    tree = Tree(leaves)
    root = tree.root()
    assert root == root_of(leaves)
    for index in range(0, size, 7):
        proof = tree.path(index)
        assert verify_inclusion(leaves[index], index, size, proof, root)
        assert proof == inclusion_proof(leaves, index)
