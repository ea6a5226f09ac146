"""A Certificate-Transparency-style Merkle tree (RFC 6962 §2.1) over the ledger's
transactions: the pure core, with no storage, no database and no Flask.

Units. Every hash here is 32 raw bytes of SHA-256 (``bytes``); hex appears only at the
API edge, in whatever publishes a root or a proof. Sizes and indices are ``int`` counts of
leaves; leaf indices are 0-based.

Hashing (RFC 6962 §2.1). ``leaf_hash(d) = SHA-256(0x00 ‖ d)``, ``node_hash(l, r) =
SHA-256(0x01 ‖ l ‖ r)`` and the empty tree's root is ``SHA-256("")`` (``EMPTY_ROOT``). A
tree of n > 1 leaves is split at k, the largest power of two strictly smaller than n:
its root is ``node_hash(MTH(D[0:k]), MTH(D[k:n]))``. The two prefixes keep leaf and node
hashes apart, so no leaf can pass for a subtree.

Addressing. Only *complete* subtrees are ever stored, each once and for good: the node at
``(level, index)`` is the root of the perfect subtree over leaves
``[index·2**level, (index+1)·2**level)``; level 0 holds the leaf hashes. A node exists as
soon as the tree has ``(index+1)·2**level`` leaves, and appending never changes it — the
store is append-only like the ledger it commits to. Whatever keeps the nodes (a dict, a
table keyed by (level, index)) is the caller's: every function that needs them takes
``get(level, index) -> bytes``, which must return the stored hash (a missing node is the
store's error, e.g. ``KeyError``, and propagates).

Invariants.
- After ``n`` appends through :func:`nodes_to_store` the store holds exactly the complete
  nodes of a tree of ``n`` leaves: ``(level, index)`` for every ``(index+1)·2**level <= n``.
- Every subtree the RFC's recursion visits in a tree of n leaves is either one complete
  node or a *right-edge* subtree ``[start, n)``, whose hash folds the complete nodes of
  the binary decomposition of ``n - start`` from the right (at most log2(n) + 1 reads).
- Hence :func:`root_at`, :func:`inclusion_proof` and :func:`consistency_proof` answer for
  any past size from the same store with O(log n) calls of ``get``: a proof visits one
  subtree per level, and at most one of them is a right-edge subtree.
- The builders raise :class:`ProofError` (a ``ValueError``) for sizes or indices out of
  range. The verifiers never raise on arguments of the documented types: a proof of the
  wrong length, an index outside the tree, a hash that is not 32 bytes — all give False.
"""

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

# ``get(level, index)`` returns the stored hash of the complete node at that address.
GetNode = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof (or a root) was asked for sizes or indices that do not exist."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf whose data (the canonical bytes of a transaction) is ``data``:
    ``SHA-256(0x00 ‖ data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node over two subtree hashes: ``SHA-256(0x01 ‖ left ‖
    right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of the given leaf hashes, straight from RFC 6962's recursive
    definition — the reference the incremental functions are checked against. O(n)."""

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = _split(hi - lo)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth(0, len(leaf_hashes)) if leaf_hashes else EMPTY_ROOT


def nodes_to_store(size: int, new_leaf_hash: bytes, get: GetNode) -> list[tuple[int, int, bytes]]:
    """The complete nodes to store when leaf number ``size`` (0-based; the tree had
    ``size`` leaves) is appended: ``(0, size, new_leaf_hash)`` first, then each node one
    level up that this leaf completes, as ``(level, index, hash)``.

    Reads the left sibling of each completed node — one ``get`` per trailing 1 bit of
    ``size`` — and returns at most log2(size + 1) + 1 nodes. Raises ``ValueError`` for a
    negative size or a leaf hash that is not 32 bytes."""
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    if not _is_hash(new_leaf_hash):
        raise ValueError("a leaf hash is 32 raw bytes")
    level, index, hash_ = 0, size, new_leaf_hash
    nodes = [(level, index, hash_)]
    while index & 1:
        hash_ = node_hash(get(level, index - 1), hash_)
        level, index = level + 1, index >> 1
        nodes.append((level, index, hash_))
    return nodes


def _subtree_hash(start: int, count: int, get: GetNode) -> bytes:
    """The hash of the RFC 6962 subtree over leaves ``[start, start + count)``, where
    ``start`` is a multiple of the smallest power of two >= ``count`` (true of every
    subtree the recursion visits). A perfect subtree is one stored node; a right-edge one
    folds, from the right, the complete nodes of the binary decomposition of ``count``:
    one ``get`` per 1 bit of ``count``."""
    parts = []
    for level in reversed(range(count.bit_length())):
        if count >> level & 1:
            parts.append(get(level, start >> level))
            start += 1 << level
    hash_ = parts.pop()
    while parts:
        hash_ = node_hash(parts.pop(), hash_)
    return hash_


def root_at(size: int, get: GetNode) -> bytes:
    """The root of the tree of the first ``size`` leaves (``EMPTY_ROOT`` for 0), from
    the stored complete nodes: one ``get`` per 1 bit of ``size``. The store may hold more
    leaves than ``size``; raises :class:`ProofError` for a negative size."""
    if size < 0:
        raise ProofError(f"tree size {size} is negative")
    return _subtree_hash(0, size, get) if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, get: GetNode) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaves —
    RFC 6962 §2.1.1 PATH(m, D[n]), ordered from the leaf's sibling up to the child of the
    root. Empty for a tree of one leaf.

    One subtree per level: when the leaf is in the right part the sibling is the left
    part, a perfect subtree (one read); the first time it is in the left part the sibling
    is a right-edge subtree (one read per 1 bit of its size) and from then on the walk is
    inside a perfect subtree. At most 2·ceil(log2 size) calls of ``get``. Raises
    :class:`ProofError` unless ``0 <= index < size``."""
    if not 0 <= index < size:
        raise ProofError(f"no leaf {index} in a tree of {size} leaves")
    path = []
    start, m, n = 0, index, size
    while n > 1:
        k = _split(n)
        if m < k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            path.append(_subtree_hash(start + k, n - k, get))
            n = k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.append(_subtree_hash(start, k, get))
            start, m, n = start + k, m - k, n - k
    path.reverse()
    return path


def consistency_proof(first: int, second: int, get: GetNode) -> list[bytes]:
    """The proof that the tree of the first ``first`` leaves is a prefix of the tree of
    the first ``second`` leaves — RFC 6962 §2.1.2 PROOF(m, D[n]) = SUBPROOF(m, D[n],
    true). Empty when ``first == second`` or ``first == 0``.

    SUBPROOF(m, D[n], b): when m = n it is [] if b (the subtree is the old tree itself,
    whose root the verifier has) else [MTH(D[n])]; otherwise, with k the split of n, it is
    SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) when m <= k and SUBPROOF(m - k, D[k:n], false) :
    MTH(D[0:k]) when m > k. As in :func:`inclusion_proof`, at most one subtree read is a
    right-edge one, so at most 2·ceil(log2 second) + 1 calls of ``get``. Raises
    :class:`ProofError` unless ``0 <= first <= second``."""
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    proof = []
    start, m, n, whole_old_tree = 0, first, second, True
    while m != n:
        k = _split(n)
        if m <= k:
            proof.append(_subtree_hash(start + k, n - k, get))
            n = k
        else:
            proof.append(_subtree_hash(start, k, get))
            start, m, n, whole_old_tree = start + k, m - k, n - k, False
    if not whole_old_tree:
        proof.append(_subtree_hash(start, m, get))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``path`` proves that ``leaf_hash`` is leaf ``index`` of the tree of
    ``size`` leaves whose root is ``root`` — RFC 9162 §2.1.3.2, needing no storage.

    False (never an exception) for ``index`` outside ``[0, size)``, a path of the wrong
    length, or any hash that is not 32 bytes. The size is trusted input, bound to the root
    by whoever signed the tree head: the path commits to the leaf's left/right route, so
    it also verifies against another size in which that route has the same shape."""
    if not 0 <= index < size or not _is_hash(leaf_hash) or not _is_hash(root):
        return False
    if not all(_is_hash(p) for p in path):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` proves that the tree of ``first`` leaves with root ``first_root``
    is a prefix of the tree of ``second`` leaves with root ``second_root`` — RFC 9162
    §2.1.4.2, needing no storage.

    The trivial cases take an empty proof: ``first == second`` needs equal roots, and
    ``first == 0`` needs ``first_root == EMPTY_ROOT`` (and, if ``second`` is 0 too, the
    same of ``second_root``) — stricter than RFC 9162, which leaves the roots of the
    empty case unchecked. False (never an exception) for ``first > second``, a negative
    size, a proof of the wrong length, or any hash that is not 32 bytes."""
    if not _is_hash(first_root) or not _is_hash(second_root):
        return False
    if not all(_is_hash(c) for c in proof) or not 0 <= first <= second:
        return False
    if first == 0:
        return not proof and first_root == EMPTY_ROOT and (second > 0 or second_root == first_root)
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if (first & (first - 1)) == 0:  # the old tree is a perfect subtree: its root starts the path
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root
