"""The RFC 6962 Merkle tree of ``ledger.merkle``: known answers, the incremental store,
and properties of the proofs.

The known answers (the reference tree of eight leaves of the C++ CT code, Trillian and
transparency-dev/merkle) are copied from those repositories, never computed here; other
expected values come from RFC 6962's definitions written out below with ``hashlib``.
"""

import hashlib
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_to_store,
    root_at,
    root_of,
    verify_consistency,
    verify_inclusion,
)

H = bytes.fromhex

# --- Reference vectors ----------------------------------------------------------------
# From google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc: kInputs,
# kSHA256EmptyTreeHash and kSHA256Roots ("incremental roots from building the reference
# tree from inputs leaf-by-leaf"). The same values are in google/trillian
# merkle/testonly/constants.go (RootHashes) and transparency-dev/merkle
# proof/verify_test.go (roots).
INPUTS = [b""] + [  # kInputs[0] is the empty string
    H(x)
    for x in "00 10 2021 3031 40414243 5051525354555657 606162636465666768696a6b6c6d6e6f".split()
]
EMPTY_TREE_HASH = H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
ROOTS = [  # ROOTS[n] is the root of the first n inputs
    EMPTY_TREE_HASH,
    H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# From google/trillian, merkle/testonly/constants.go (NodeHashes: "node hashes for all
# complete subtrees ... The first index in the slice is the tree level (zero being the
# leaves level), the second is the horizontal index within a level") — the same
# (level, index) addressing as ledger.merkle. Also in transparency-dev/merkle
# testonly/constants.go.
NODES = [  # NODES[level][index]
    [H(x) for x in level.split()]
    for level in """
    6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d
    96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7
    0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7
    07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7
    bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b
    4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658
    b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f
    46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1
    --
    fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125
    5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e
    0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a
    ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0
    --
    d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7
    6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4
    --
    5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328
""".split("--")
]


def table(text: str) -> list[tuple[int, int, list[bytes]]]:
    """Rows of "a b hash..." (a hash alone on a line continues the row above)."""
    rows: list[tuple[int, int, list[bytes]]] = []
    for words in (line.split() for line in text.strip().splitlines()):
        if len(words[0]) == 64:
            rows[-1][2].extend(H(w) for w in words)
        else:
            rows.append((int(words[0]), int(words[1]), [H(w) for w in words[2:]]))
    return rows


# (leaf index, size, audit path) from google/certificate-transparency,
# cpp/merkletree/merkle_tree_test.cc, kSHA256Paths (also transparency-dev/merkle
# proof/verify_test.go, inclusionProofs). The C++ table counts leaves from 1: its
# {1, 8, ...} is "0 8 ..." here.
PATHS = table("""
    0 1
    0 8 96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7
        5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e
        6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4
    5 8 bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b
        ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0
        d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7
    2 3 fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125
    1 5 6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d
        5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e
        bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b
""")

# (first, second, proof): the first four rows from google/certificate-transparency,
# cpp/merkletree/merkle_tree_test.cc, kSHA256Proofs; "6 7" from transparency-dev/merkle
# proof/verify_test.go, consistencyProofs.
PROOFS = table("""
    1 1
    1 8 96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7
        5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e
        6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4
    6 8 0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a
        ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0
        d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7
    2 5 5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e
        bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b
    6 7 0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a
        b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f
        d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7
""")

# From transparency-dev/merkle, proof/proof_test.go (TestInclusion, TestConsistency):
# which stored nodes, as (level, index), make each proof in the reference tree — the
# entries that fit in eight leaves. "L" is that file's rehashed node l = hash(i, j),
# i = (1, 2) and j = (0, 6): the root of leaves 4..6, the right half of the 7-leaf tree.
L = "l"
NODE_INCLUSION = [  # (index, size, nodes)
    (0, 1, []),
    (0, 2, [(0, 1)]),
    (1, 2, [(0, 0)]),
    (1, 3, [(0, 0), (0, 2)]),
    (0, 7, [(0, 1), (1, 1), L]),
    (1, 7, [(0, 0), (1, 1), L]),
    (2, 7, [(0, 3), (1, 0), L]),
    (3, 7, [(0, 2), (1, 0), L]),
    (4, 7, [(0, 5), (0, 6), (2, 0)]),
    (5, 7, [(0, 4), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (2, 0)]),
    (2, 4, [(0, 3), (1, 0)]),
    (3, 5, [(0, 2), (1, 0), (0, 4)]),
    (3, 6, [(0, 2), (1, 0), (1, 2)]),
    (4, 6, [(0, 5), (2, 0)]),
]
NODE_CONSISTENCY = [  # (first, second, nodes)
    (1, 2, [(0, 1)]),
    (1, 4, [(0, 1), (1, 1)]),
    (1, 6, [(0, 1), (1, 1), (1, 2)]),
    (2, 3, [(0, 2)]),
    (2, 8, [(1, 1), (2, 1)]),
    (3, 7, [(0, 2), (0, 3), (1, 0), L]),
    (4, 7, [L]),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)]),
    *[(size, size, []) for size in (1, 2, 3, 4, 5, 7, 8)],
    (2, 4, [(1, 1)]),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)]),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)]),
    (4, 6, [(1, 2)]),
    (1, 7, [(0, 1), (1, 1), L]),
]


# --- RFC 6962 §2.1 written out, independently of the module ----------------------------
def _hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _down_to_power_of_two(n: int) -> int:
    """The largest power of two smaller than n (as the C++ test's DownToPowerOfTwo)."""
    split = 1
    while split < n:
        split <<= 1
    return split >> 1


def _mth(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _down_to_power_of_two(len(hashes))
    return _hash_children(_mth(hashes[:k]), _mth(hashes[k:]))


def _route(index: int, size: int) -> list[str]:
    """The turns from the root down to leaf ``index`` (the recursion of PATH)."""
    turns = []
    while size > 1:
        k = _down_to_power_of_two(size)
        if index < k:
            turns.append("left")
            size = k
        else:
            turns.append("right")
            index, size = index - k, size - k
    return turns


def _consistency_route(first: int, second: int) -> tuple[list[str], bool]:
    """The turns of SUBPROOF(first, D[second], true), and whether b is still true at the
    end (the old tree is a complete subtree whose root starts the verification)."""
    turns, b = [], True
    while first != second:
        k = _down_to_power_of_two(second)
        if first <= k:
            turns.append("left")
            second = k
        else:
            turns.append("right")
            first, second, b = first - k, second - k, False
    return turns, b


L_HASH = _hash_children(NODES[1][2], NODES[0][6])


def _node(ref) -> bytes:
    return L_HASH if ref == L else NODES[ref[0]][ref[1]]


# --- The store: a dict keyed by (level, index) that counts reads ------------------------
class Store:
    def __init__(self, hashes=()) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = self.reads = 0
        for hash_ in hashes:
            self.append(hash_)

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.nodes.__getitem__((level, index))

    def append(self, hash_: bytes) -> int:
        """Append one leaf hash; return how many nodes it read."""
        before = self.reads
        new = nodes_to_store(self.size, hash_, self.get)
        for level, index, node in new:
            assert (level, index) not in self.nodes  # complete nodes are written once
            self.nodes[(level, index)] = node
        assert new[0] == (0, self.size, hash_)
        assert len(new) == self.reads - before + 1
        self.size += 1
        return self.reads - before

    def counted(self, function, *args):
        """``function(*args, self.get)`` and the number of reads it made."""
        before = self.reads
        result = function(*args, self.get)
        return result, self.reads - before


REFERENCE = Store([leaf_hash(d) for d in INPUTS])


def flip(hash_: bytes, bit: int) -> bytes:
    changed = bytearray(hash_)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


# --- Known answers --------------------------------------------------------------------
def test_the_hashes_are_the_reference_ones():
    assert EMPTY_ROOT == EMPTY_TREE_HASH
    assert [leaf_hash(d) for d in INPUTS] == NODES[0]
    for level in range(1, len(NODES)):
        for index, node in enumerate(NODES[level]):
            below = NODES[level - 1]
            assert node_hash(below[2 * index], below[2 * index + 1]) == node
    assert _hash_children(NODES[2][0], L_HASH) == ROOTS[7]  # the "l" transcribed right


@pytest.mark.parametrize("size", range(9))
def test_root_of_every_prefix_is_the_reference_root(size):
    assert root_of([leaf_hash(d) for d in INPUTS[:size]]) == ROOTS[size]


def test_appending_stores_exactly_the_complete_nodes_and_every_root():
    store = Store()
    assert root_at(0, store.get) == EMPTY_TREE_HASH
    for size, data in enumerate(INPUTS, start=1):
        store.append(leaf_hash(data))
        assert store.nodes == {
            (level, index): node
            for level, row in enumerate(NODES)
            for index, node in enumerate(row)
            if (index + 1) << level <= size
        }
        for past in range(size + 1):  # past roots from the bigger store
            assert root_at(past, store.get) == ROOTS[past]


@pytest.mark.parametrize(("index", "size", "path"), PATHS)
def test_the_reference_audit_paths(index, size, path):
    assert inclusion_proof(index, size, REFERENCE.get) == path
    assert verify_inclusion(leaf_hash(INPUTS[index]), index, size, path, ROOTS[size])


@pytest.mark.parametrize(("first", "second", "proof"), PROOFS)
def test_the_reference_consistency_proofs(first, second, proof):
    assert consistency_proof(first, second, REFERENCE.get) == proof
    assert verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)


@pytest.mark.parametrize(("index", "size", "nodes"), NODE_INCLUSION)
def test_audit_paths_are_the_reference_nodes(index, size, nodes):
    path = [_node(ref) for ref in nodes]
    assert inclusion_proof(index, size, REFERENCE.get) == path
    assert verify_inclusion(NODES[0][index], index, size, path, ROOTS[size])


@pytest.mark.parametrize(("first", "second", "nodes"), NODE_CONSISTENCY)
def test_consistency_proofs_are_the_reference_nodes(first, second, nodes):
    proof = [_node(ref) for ref in nodes]
    assert consistency_proof(first, second, REFERENCE.get) == proof
    assert verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)


def _tampered(proof: list[bytes], bit: int, extra: bytes) -> list[list[bytes]]:
    """Each element with a bit flipped, each element dropped, an element added at each
    place."""
    out = [[*proof[:j], flip(proof[j], bit), *proof[j + 1 :]] for j in range(len(proof))]
    out += [proof[:j] + proof[j + 1 :] for j in range(len(proof))]
    out += [[*proof[:j], extra, *proof[j:]] for j in range(len(proof) + 1)]
    return out


SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.mark.parametrize(("index", "size", "path"), PATHS)
def test_the_reference_probes_of_an_audit_path_fail(index, size, path):
    """The wrong answers the C++ VerifierCheck (and Go's corruptInclusionProof) try."""
    leaf, root = leaf_hash(INPUTS[index]), ROOTS[size]
    claims = [(index - 1, size), (index + 1, size), (index ^ 2, size)]
    claims += [(index, size * 2), (index, size // 2)]
    assert not any(verify_inclusion(leaf, i, n, path, root) for i, n in claims)
    assert not verify_inclusion(leaf_hash(b"WrongLeaf"), index, size, path, root)
    for wrong_root in (EMPTY_TREE_HASH, SOME_HASH):
        assert not verify_inclusion(leaf, index, size, path, wrong_root)
    wrong_paths = [[*path, b""], [*path, root], [b"", *path], [root, *path]]
    wrong_paths += [[*path[:j], EMPTY_TREE_HASH, *path[j + 1 :]] for j in range(len(path))]
    for wrong in wrong_paths + _tampered(path, 3, SOME_HASH):
        assert not verify_inclusion(leaf, index, size, wrong, root), wrong


@pytest.mark.parametrize(("first", "second", "proof"), [p for p in PROOFS if p[2]])
def test_the_reference_probes_of_a_consistency_proof_fail(first, second, proof):
    """The wrong answers the C++ VerifierConsistencyCheck (and Go's
    corruptConsistencyProof) try."""
    r1, r2 = ROOTS[first], ROOTS[second]
    sizes = [(first - 1, second), (first + 1, second), (first ^ 2, second)]
    sizes += [(first, second * 2), (first, second // 2)]
    assert not any(verify_consistency(m, n, r1, r2, proof) for m, n in sizes)
    roots = [(r1, b"WrongRoot"), (b"WrongRoot", r2), (r2, r1)]
    assert not any(verify_consistency(first, second, x, y, proof) for x, y in roots)
    wrong_proofs = [[], [*proof, b""], [*proof, r1], [*proof, r2], [b"", *proof]]
    wrong_proofs += [[r1, *proof], [r2, *proof], [proof[0], *proof]]
    wrong_proofs += [[*proof[:j], EMPTY_TREE_HASH, *proof[j + 1 :]] for j in range(len(proof))]
    for wrong in wrong_proofs + _tampered(proof, 4, SOME_HASH):
        assert not verify_consistency(first, second, r1, r2, wrong), wrong


def test_trivial_and_malformed_consistency_claims():
    r1, r2, e = ROOTS[1], ROOTS[2], EMPTY_TREE_HASH
    assert verify_consistency(0, 0, e, e, [])
    assert verify_consistency(0, 5, e, ROOTS[5], [])  # every tree extends the empty one
    assert verify_consistency(1, 1, r1, r1, [])
    assert verify_consistency(8, 8, ROOTS[8], ROOTS[8], [])
    wrong = [
        (0, 0, e, r2, []),  # roots differ
        (0, 0, r1, r1, []),  # the empty tree has one root
        (0, 5, r1, ROOTS[5], []),
        (1, 1, r1, r2, []),
        (1, 0, r1, e, []),  # time travel
        (2, 1, r2, r1, []),
        (-1, 3, e, ROOTS[3], []),
        (1, 2, r1, r2, []),  # a real step needs a proof
        (0, 0, e, e, [e]),  # trivial claims take the empty proof
        (0, 1, e, r1, [e]),
        (1, 1, r1, r1, [e]),
        (1, 2, r1[:31], r2, [NODES[0][1]]),  # hashes are 32 bytes
        (1, 2, r1, r2 + b"\x00", [NODES[0][1]]),
        (1, 2, r1, r2, [NODES[0][1][:31]]),
        (1, 2, r1, r2, [bytearray(NODES[0][1])]),
    ]
    assert [w[:2] for w in wrong if verify_consistency(*w)] == []
    assert verify_consistency(1, 2, r1, r2, [NODES[0][1]])


def test_trivial_and_malformed_inclusion_claims():
    leaf = NODES[0][0]
    assert verify_inclusion(leaf, 0, 1, [], ROOTS[1])
    wrong = [
        (leaf, 0, 0, [], EMPTY_TREE_HASH),  # nothing is in the empty tree
        (leaf, 1, 0, [], EMPTY_TREE_HASH),
        (leaf, 1, 1, [], leaf),  # index >= size
        (leaf, 2, 1, [], leaf),
        (leaf, -1, 1, [], leaf),
        (leaf, 0, -1, [], leaf),
        (leaf, 0, 1, [], EMPTY_TREE_HASH),
        (b"", 0, 1, [], b""),  # hashes are 32 bytes
        (leaf[:31], 0, 1, [], leaf[:31]),
        (leaf, 0, 2, [NODES[0][1][:31]], ROOTS[2]),
        (leaf, 0, 2, [NODES[0][1]], ROOTS[2][:31]),
    ]
    # A byte moved across the boundary in 0x01 ‖ left ‖ right leaves the hash as it was:
    # only the rule that every hash is 32 bytes rejects it.
    l0, l1 = NODES[0][0], NODES[0][1]
    assert node_hash(l0 + l1[:1], l1[1:]) == ROOTS[2]
    wrong.append((l1[1:], 1, 2, [l0 + l1[:1]], ROOTS[2]))
    assert [w[1:3] for w in wrong if verify_inclusion(*w)] == []


def test_the_size_is_bound_to_the_root_by_the_tree_head_not_by_the_proof():
    """RFC 9162's verifiers take the size on trust: leaf 0 has the same route in the
    trees of 7 and 8 leaves, so the 8-leaf path verifies as "leaf 0 of 7" against the
    8-leaf root. Sound only because a signed tree head pairs each root with its size."""
    (_, _, path), (_, _, proof) = PATHS[1], PROOFS[1]  # leaf 0 of 8; from 1 to 8
    assert verify_inclusion(NODES[0][0], 0, 7, path, ROOTS[8])
    assert verify_consistency(1, 7, ROOTS[1], ROOTS[8], proof)
    assert not verify_inclusion(NODES[0][0], 0, 7, path, ROOTS[7])


def test_the_builders_reject_what_does_not_exist():
    for index, size in [(0, 0), (1, 1), (8, 8), (9, 8), (-1, 5), (3, -1)]:
        with pytest.raises(ProofError):
            inclusion_proof(index, size, REFERENCE.get)
    for first, second in [(1, 0), (9, 8), (-1, 3), (5, -1)]:
        with pytest.raises(ProofError):
            consistency_proof(first, second, REFERENCE.get)
    with pytest.raises(ProofError):
        root_at(-1, REFERENCE.get)
    assert issubclass(ProofError, ValueError)
    assert consistency_proof(0, 8, REFERENCE.get) == []
    assert consistency_proof(0, 0, REFERENCE.get) == []
    with pytest.raises(KeyError):  # past the stored tree: the store's own error
        inclusion_proof(0, 9, REFERENCE.get)

    with pytest.raises(ValueError):
        nodes_to_store(-1, NODES[0][0], REFERENCE.get)
    with pytest.raises(ValueError):
        nodes_to_store(0, b"short", REFERENCE.get)
    with pytest.raises(ValueError):
        nodes_to_store(0, NODES[0][0].hex(), REFERENCE.get)  # hex is for the API edge


# --- Cost: count the reads -------------------------------------------------------------
BIG = 100_000


@pytest.fixture(scope="module")
def big():
    """A store of 100 000 leaves, the leaf hashes, and how many reads each append made."""
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(BIG)]
    store = Store()
    append_reads = [store.append(hash_) for hash_ in hashes]
    return store, hashes, append_reads


def _indices(n: int) -> list[int]:
    if n <= 1000:
        return list(range(n))
    edges = [1, 2, 3, n // 2, n - 3, n - 2, n - 1, 65_535, 65_536, 98_303, 98_304]
    return sorted({*range(0, n, 173), *(i for i in edges if i < n)})


@pytest.mark.parametrize("n", [1000, 65_537, 99_999, BIG])
def test_proofs_read_a_logarithmic_number_of_nodes(big, n):
    store, hashes, _ = big
    bound = 2 * math.ceil(math.log2(n)) + 2
    root, reads = store.counted(root_at, n)
    assert root == root_of(hashes[:n])
    assert reads == n.bit_count() <= math.ceil(math.log2(n)) + 1
    for index in _indices(n):
        path, reads = store.counted(inclusion_proof, index, n)
        assert reads <= bound, (index, n, reads)
        assert verify_inclusion(hashes[index], index, n, path, root)
    for first in [0, *_indices(n), n]:
        proof, reads = store.counted(consistency_proof, first, n)
        assert reads <= bound, (first, n, reads)
        assert verify_consistency(first, n, root_at(first, store.get), root, proof)


def test_an_append_reads_a_logarithmic_number_of_nodes(big):
    store, _, append_reads = big
    # leaf number s reads one node per trailing 1 bit of s, so at most log2(s + 1)
    assert all(
        reads == (s ^ (s + 1)).bit_length() - 1 <= math.log2(s + 1)
        for s, reads in enumerate(append_reads)
    )
    assert max(append_reads) == 16  # leaf 65535 completes the node over leaves 0..65535
    assert len(store.nodes) == 2 * BIG - BIG.bit_count()  # every complete node, no more


# --- Properties -----------------------------------------------------------------------
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def trees(draw):
    """Leaf hashes of a random tree of 1..300 leaves, all of distinct data (so no two
    subtrees share a hash and a swapped pair of children is always caught)."""
    n = draw(st.integers(1, 300))
    salt = draw(st.binary(max_size=8))
    return [leaf_hash(i.to_bytes(2, "big") + salt) for i in range(n)]


@PROPERTIES
@given(hashes=trees(), data=st.data())
def test_every_proof_verifies(hashes, data):
    # (A proof that verifies is the RFC's own: the route fixes what each element must be.)
    store = Store(hashes)
    size = data.draw(st.integers(1, len(hashes)), label="size")
    root = root_at(size, store.get)
    assert root == root_of(hashes[:size]) == _mth(hashes[:size])
    for index in range(size):
        path = inclusion_proof(index, size, store.get)
        assert verify_inclusion(hashes[index], index, size, path, root)
    for first in range(size + 1):
        proof = consistency_proof(first, size, store.get)
        assert verify_consistency(first, size, root_at(first, store.get), root, proof)


@PROPERTIES
@given(hashes=trees(), data=st.data())
def test_a_tampered_inclusion_claim_fails(hashes, data):
    store = Store(hashes)
    size = data.draw(st.integers(1, len(hashes)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    bit = data.draw(st.integers(0, 255), label="bit")
    extra = data.draw(st.sampled_from([bytes(32), hashes[0], root_of(hashes)]), label="extra")
    leaf, root = hashes[index], root_at(size, store.get)
    path = inclusion_proof(index, size, store.get)
    assert verify_inclusion(leaf, index, size, path, root)

    assert not verify_inclusion(flip(leaf, bit), index, size, path, root)
    assert not verify_inclusion(leaf, index, size, path, flip(root, bit))
    for other in {size - 1, size + 1} & set(range(1, len(hashes) + 1)):
        assert not verify_inclusion(leaf, index, size, path, root_at(other, store.get))
    for wrong in _tampered(path, bit, extra):
        assert not verify_inclusion(leaf, index, size, wrong, root)
    # In one tree the left/right route names the leaf: every other index fails.
    for other in range(-1, size + 2):
        if other != index:
            assert not verify_inclusion(leaf, other, size, path, root)
    # The size is not in the hashes (a signed tree head binds it to the root): another
    # size verifies exactly when it leaves the leaf's route the same shape — e.g. leaf 0
    # of 7 and of 8 — and any size that changes the route fails, 2·size and size/2 too.
    for other in range(-1, 2 * size + 2):
        same_route = 0 <= index < other and _route(index, other) == _route(index, size)
        assert verify_inclusion(leaf, index, other, path, root) == same_route
    assert not verify_inclusion(leaf, index, 2 * size, path, root)


@PROPERTIES
@given(hashes=trees().filter(lambda h: len(h) >= 2), data=st.data())
def test_a_tampered_consistency_claim_fails(hashes, data):
    store = Store(hashes)
    second = data.draw(st.integers(2, len(hashes)), label="second")
    first = data.draw(st.integers(1, second - 1), label="first")
    bit = data.draw(st.integers(0, 255), label="bit")
    extra = data.draw(st.sampled_from([bytes(32), hashes[0], root_of(hashes)]), label="extra")
    r1, r2 = root_at(first, store.get), root_at(second, store.get)
    proof = consistency_proof(first, second, store.get)
    assert proof and verify_consistency(first, second, r1, r2, proof)

    assert not verify_consistency(first, second, flip(r1, bit), r2, proof)
    assert not verify_consistency(first, second, r1, flip(r2, bit), proof)
    assert not verify_consistency(first, second, r2, r1, proof)
    assert not verify_consistency(first, second, r1, r2, [])
    for wrong in _tampered(proof, bit, extra):
        assert not verify_consistency(first, second, r1, r2, wrong)
    # As with an audit path, the sizes are bound to the roots by the tree heads, not by
    # the hashes: other sizes verify exactly when SUBPROOF takes the same route.
    route = _consistency_route(first, second)
    for other in range(-1, second + 2):
        same_route = 1 <= other < second and _consistency_route(other, second) == route
        assert verify_consistency(other, second, r1, r2, proof) == same_route
    for other in range(first - 1, 2 * second + 2):
        same_route = 1 <= first < other and _consistency_route(first, other) == route
        assert verify_consistency(first, other, r1, r2, proof) == same_route
    assert not verify_consistency(first, 2 * second, r1, r2, proof)
