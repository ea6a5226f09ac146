"""A witness for the shop's Merkle log: checks that the signed tree head it serves now
extends the one this witness saw last, and that the public export hashes to it.

Usage: ``python -m ledger.witness BASE_URL --state FILE [--samples K] [--public-key B64]
[--timeout SECONDS]``, e.g. ``python -m ledger.witness https://shop.example --state
witness.json``. One run, stopping at the first problem:

1. The key: ``--public-key`` (base64 of the raw 32-byte Ed25519 key), else the key the
   state file pins, else (first run: trust on first use) ``GET /api/v1/ledger/public-key``.
2. ``GET /api/v1/ledger/tree-head`` must verify with it (``ledger.tree_head.verify_head``);
   a head naming another key is a *changed key* — re-pin with ``--public-key`` only after
   checking the new key out of band.
3. Against the saved head, if any: a smaller tree is *rewritten history*; the same size
   with another root is a *fork*; a larger tree needs a consistency proof (``GET
   /api/v1/ledger/proof/consistency?first=M&second=N``) that verifies, else *rewritten
   history*.
4. ``GET /api/v1/ledger/export.jsonl`` is read line by line (it may be far larger than
   memory): each line's ``hash`` must be the hash of its content chained to the line
   before (``ledger.canonical``), else *rewritten history*; line i's hash is leaf i's
   data, and the root of the first ``tree_size`` leaves (a stack of complete subtree
   roots: O(log n) memory) must be the head's, else *wrong root*.
5. ``--samples`` leaves (default 8), drawn from the OS's random source so the log cannot
   guess them, must be proven against the head by ``GET /api/v1/ledger/proof/inclusion?
   transaction_id=ID&tree_size=N``, else *bad proof*.
6. The head and the key are saved as the state (JSON; a synced temporary file renamed
   over it) — only when every check passed.

Exit status: 0 — everything holds (one summary line on stdout); 1 — the log is
inconsistent: fork, rewritten history, bad signature (or changed key), wrong root or bad
proof, named on stderr with the heads involved; 2 — could not check: bad arguments, a
network error or timeout, an HTTP error, a response that is not the contract's JSON, an
unreadable state file. Exit 2 proves nothing either way: run again later.

Every request has a timeout (``--timeout``, default 30 s, per connection and per read);
only http(s) URLs are followed, redirects included. Imports: the standard library,
``cryptography`` (through ``ledger.tree_head``), ``ledger.merkle`` and ``ledger.canonical``
— never SQLAlchemy, Flask or the shop.
"""

import argparse
import base64
import contextlib
import http.client
import itertools
import json
import os
import random
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ledger.canonical import GENESIS_HASH, MerkleRoot, chain_hash
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.tree_head import (
    ALGORITHM,
    HEAD_FIELDS,
    KEY_SIZE,
    decode_base64,
    key_id,
    utc_timestamp,
    verify_head,
)

OK, INCONSISTENT, COULD_NOT_CHECK = 0, 1, 2
DEFAULT_SAMPLES = 8
DEFAULT_TIMEOUT = 30.0
API = "/api/v1/ledger"
MAX_JSON_BYTES = 1 << 20  # a head, a key or a proof is a few kB at most
MAX_LINE_BYTES = 16 << 20  # one transaction of the export
STATE_VERSION = 1
USER_AGENT = "lianxin-ledger-witness/1"
_HEX_DIGITS = frozenset("0123456789abcdef")


class CouldNotCheck(Exception):
    """The check could not be made — network, arguments, an unexpected response, the
    state file. Exit status 2."""


class Inconsistent(Exception):
    """The log contradicts its own signature, its export or a head seen before. Exit
    status 1. ``kind`` is one of "fork", "rewritten history", "bad signature", "wrong
    root", "bad proof"; ``heads`` are (label, head) pairs to show."""

    def __init__(self, kind: str, detail: str, heads: Sequence[tuple[str, object]] = ()):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.heads = kind, detail, list(heads)


def _hash_of_hex(value: object) -> bytes | None:
    """32 bytes from 64 lowercase hex digits, else None."""
    if isinstance(value, str) and len(value) == 64 and _HEX_DIGITS.issuperset(value):
        return bytes.fromhex(value)
    return None


def _hash_list(value: object) -> list[bytes] | None:
    if not isinstance(value, list):
        return None
    hashes = [_hash_of_hex(item) for item in value]
    return None if any(h is None for h in hashes) else hashes


def _same_int(value: object, expected: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == expected


def decode_public_key(value: object) -> bytes | None:
    """The raw 32 bytes of a base64 Ed25519 public key, else None."""
    return decode_base64(value, KEY_SIZE)


def _show(head: object) -> str:
    return json.dumps(head, sort_keys=True, ensure_ascii=False)


# --- HTTP -----------------------------------------------------------------------------


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            fp.close()
            raise urllib.error.URLError(f"HTTP {code} redirect to {newurl!r} refused (not http(s))")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, str):
        error = error.reason
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _error_detail(error: urllib.error.HTTPError) -> str:
    """`` (code: message)`` from a contract error body, or nothing."""
    try:
        body = json.loads(error.read(MAX_JSON_BYTES))
        problem = body["error"]
        return f" ({problem['code']}: {problem['message']})"
    except Exception:  # any body at all: the status alone is the news
        return ""


class LogClient:
    """GETs against one log's ``/api/v1/ledger`` endpoints, every failure a
    :class:`CouldNotCheck`."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT):
        try:
            self.base_url = base_url_argument(base_url)
        except ValueError as error:
            raise CouldNotCheck(str(error)) from error
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_HttpOnlyRedirects)

    def url(self, path: str, params: dict | None = None) -> str:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return f"{self.base_url}{API}{path}{query}"

    def _open(self, url: str, accept: str):
        request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": USER_AGENT})
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            detail = _error_detail(error)
            error.close()
            raise CouldNotCheck(f"GET {url}: HTTP {error.code} {error.reason}{detail}") from error
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise CouldNotCheck(f"GET {url}: {_reason(error)}") from error

    def get_json(self, path: str, params: dict | None = None) -> dict:
        """The JSON object at ``path``; a body over 1 MiB, not JSON or not an object is
        a :class:`CouldNotCheck`."""
        url = self.url(path, params)
        with self._open(url, "application/json") as response:
            try:
                body = response.read(MAX_JSON_BYTES + 1)
            except (OSError, http.client.HTTPException) as error:
                raise CouldNotCheck(f"GET {url}: {_reason(error)}") from error
        if len(body) > MAX_JSON_BYTES:
            raise CouldNotCheck(f"GET {url}: the response is over {MAX_JSON_BYTES} bytes")
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise CouldNotCheck(f"GET {url}: the response is not JSON") from error
        if not isinstance(value, dict):
            raise CouldNotCheck(f"GET {url}: the response is not a JSON object")
        return value

    @contextlib.contextmanager
    def lines(self, path: str) -> Iterator[Iterator[bytes]]:
        """The lines of the body at ``path``, read as they arrive (the connection is
        closed on leaving the block, read to the end or not)."""
        url = self.url(path)
        with self._open(url, "application/x-ndjson, application/jsonl, */*") as response:
            yield self._read_lines(url, response)

    @staticmethod
    def _read_lines(url: str, response) -> Iterator[bytes]:
        count = 0
        while True:
            try:
                line = response.readline(MAX_LINE_BYTES + 1)
            except (OSError, http.client.HTTPException) as error:
                raise CouldNotCheck(f"GET {url}: {_reason(error)} after {count} lines") from error
            # http.client ends a body cut short of its Content-Length quietly.
            if not line.endswith(b"\n") and getattr(response, "length", None):
                raise CouldNotCheck(f"GET {url}: the body was cut off after {count} lines")
            if not line:
                return
            if len(line) > MAX_LINE_BYTES:
                raise CouldNotCheck(f"GET {url}: line {count + 1} is over {MAX_LINE_BYTES} bytes")
            count += 1
            yield line

    def public_key(self) -> bytes:
        """The log's raw public key, from ``/public-key`` (its key id must match it)."""
        reply = self.get_json("/public-key")
        raw = decode_public_key(reply.get("public_key"))
        if reply.get("algorithm") != ALGORITHM or raw is None or reply.get("key_id") != key_id(raw):
            raise CouldNotCheck(f"GET {self.url('/public-key')}: not an {ALGORITHM} public key")
        return raw


# --- The checks -----------------------------------------------------------------------


@dataclass
class State:
    """What the witness keeps between runs: the pinned key and the last head it checked."""

    public_key: bytes
    head: dict


def load_state(path: Path) -> State | None:
    """The saved state, or None when there is no file. A file that cannot be read, is
    not a witness state, or whose head does not verify with its own key is a
    :class:`CouldNotCheck`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise CouldNotCheck(f"cannot read the state file {path}: {error}") from error
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise CouldNotCheck(f"{path} is not a witness state file (version {STATE_VERSION})")
    key = decode_public_key(data.get("public_key"))
    head = data.get("head")
    if key is None or not verify_head(head, key):
        raise CouldNotCheck(f"the state file {path}: its head does not verify with its own key")
    return State(key, {field: head[field] for field in HEAD_FIELDS})


def save_state(path: Path, base_url: str, public_key: bytes, head: dict) -> None:
    """Write the state atomically: a synced temporary file beside ``path``, renamed over
    it — a reader sees the old state or the new one, never a mix."""
    data = {
        "version": STATE_VERSION,
        "log": base_url,
        "public_key": base64.b64encode(public_key).decode("ascii"),
        "key_id": key_id(public_key),
        "head": head,
        "checked_at": utc_timestamp(datetime.now(UTC)),
    }
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    directory = path.parent
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # not every file system syncs a directory
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def check_signature(head: object, public_key: bytes, key_source: str, saved: dict | None) -> dict:
    """The head's five signed-head fields, if it verifies with ``public_key``."""
    if verify_head(head, public_key):
        return {field: head[field] for field in HEAD_FIELDS}
    heads = [("served head", head)] + ([("saved head", saved)] if saved else [])
    pinned = key_id(public_key)
    named = head.get("key_id") if isinstance(head, dict) else None
    if isinstance(named, str) and named != pinned:
        detail = (
            f"changed key: the head names key_id {named}, but the key pinned by {key_source} "
            f"is key_id {pinned}; if the log rotated its key on purpose, confirm the new key "
            "out of band and run again with --public-key NEW_KEY"
        )
    else:
        detail = f"the served head does not verify with the key pinned by {key_source}"
    raise Inconsistent("bad signature", detail, heads)


def check_consistency(client: LogClient, saved: dict, head: dict) -> str:
    """That ``head`` extends ``saved`` (both verified); a phrase for the summary."""
    first, second = saved["tree_size"], head["tree_size"]
    first_root, second_root = bytes.fromhex(saved["root_hash"]), bytes.fromhex(head["root_hash"])
    heads = [("saved head", saved), ("served head", head)]
    if second < first:
        detail = f"the tree shrank from {first} to {second} leaves"
        raise Inconsistent("rewritten history", detail, heads)
    if second == first:
        if first_root != second_root:
            detail = f"two signed heads of size {first} with different roots"
            raise Inconsistent("fork", detail, heads)
        return f"unchanged since the saved head of {first}"
    proof: list[bytes] | None = []
    if first > 0:
        reply = client.get_json("/proof/consistency", {"first": first, "second": second})
        proof = _hash_list(reply.get("proof"))
        if not (_same_int(reply.get("first"), first) and _same_int(reply.get("second"), second)):
            detail = f"asked to prove {first} → {second}, the log answered {_show(reply)[:200]}"
            raise Inconsistent("bad proof", detail, heads)
        if proof is None:
            raise Inconsistent("bad proof", "the consistency proof is not a list of hashes", heads)
    if not verify_consistency(first, second, first_root, second_root, proof):
        detail = f"the consistency proof from {first} to {second} leaves does not verify"
        raise Inconsistent("rewritten history", detail, heads)
    return f"consistent with the saved head of {first}"


def check_export(client: LogClient, head: dict, sample: set[int]) -> dict[int, tuple]:
    """That the export's first ``tree_size`` transactions hash to the head's root; the
    (transaction id, leaf hash) of each leaf index in ``sample``."""
    size, root = head["tree_size"], bytes.fromhex(head["root_hash"])
    heads = [("served head", head)]
    tree, previous = MerkleRoot(), GENESIS_HASH
    found: dict[int, tuple] = {}
    with client.lines("/export.jsonl") as lines:
        for index, line in enumerate(itertools.islice(lines, size)):
            try:
                tx = json.loads(line)
            except (ValueError, RecursionError):
                tx = None
            data = _hash_of_hex(tx.get("hash")) if isinstance(tx, dict) else None
            tx_id = tx.get("id") if isinstance(tx, dict) else None
            if data is None or isinstance(tx_id, bool) or not isinstance(tx_id, int | str):
                detail = f"export line {index + 1} is not a transaction with an id and a hash"
                raise Inconsistent("wrong root", detail, heads)
            try:  # the leaf must be the hash of what the line says, chained to the last
                chained = tx["prev_hash"] == previous and chain_hash(previous, tx) == tx["hash"]
            except (KeyError, TypeError, ValueError, AttributeError):
                chained = False
            if not chained or str(tx_id) != str(index + 1):
                detail = f"export line {index + 1}: its hash is not its content's (broken chain)"
                raise Inconsistent("rewritten history", detail, heads)
            previous, leaf = tx["hash"], leaf_hash(data)
            tree.add_leaf_hash(leaf)
            if index in sample:
                found[index] = (tx_id, leaf)
    if tree.size < size:
        detail = f"the export has {tree.size} transactions, the head commits to {size}"
        raise Inconsistent("wrong root", detail, heads)
    if tree.root() != root:
        detail = (
            f"the export's first {size} transactions hash to {tree.root().hex()}, "
            f"the head's root is {head['root_hash']}"
        )
        raise Inconsistent("wrong root", detail, heads)
    return found


def check_inclusion(client: LogClient, head: dict, leaves: dict[int, tuple]) -> None:
    """That the log proves each sampled leaf (index → (transaction id, leaf hash)) is in
    the tree of the head."""
    size, root = head["tree_size"], bytes.fromhex(head["root_hash"])
    heads = [("served head", head)]
    for index, (tx_id, leaf) in sorted(leaves.items()):
        reply = client.get_json("/proof/inclusion", {"transaction_id": tx_id, "tree_size": size})
        path = _hash_list(reply.get("audit_path"))
        problems = []
        if str(reply.get("transaction_id")) != str(tx_id):
            problems.append(f"it is for transaction {reply.get('transaction_id')!r}")
        if not _same_int(reply.get("leaf_index"), index):
            problems.append(f"leaf_index {reply.get('leaf_index')!r}, the export's is {index}")
        if not _same_int(reply.get("tree_size"), size):
            problems.append(f"tree_size {reply.get('tree_size')!r}, not {size}")
        if reply.get("leaf_hash") != leaf.hex():
            problems.append(f"leaf_hash {reply.get('leaf_hash')!r}, the export's is {leaf.hex()}")
        if reply.get("root_hash") != head["root_hash"]:
            problems.append(f"root_hash {reply.get('root_hash')!r}, not the head's")
        if path is None:
            problems.append("audit_path is not a list of hashes")
        elif not problems and not verify_inclusion(leaf, index, size, path, root):
            problems.append("its audit path does not lead to the head's root")
        if problems:
            detail = f"inclusion proof of transaction {tx_id!r} (leaf {index}): "
            raise Inconsistent("bad proof", detail + "; ".join(problems), heads)


def run(
    base_url: str,
    state_path: Path,
    samples: int = DEFAULT_SAMPLES,
    pinned_key: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """One witness run (steps 1–6 of the module's docstring); the summary line. Raises
    :class:`Inconsistent` or :class:`CouldNotCheck`."""
    client = LogClient(base_url, timeout)
    state = load_state(state_path)
    notes = []
    if pinned_key is not None:
        public_key, key_source = pinned_key, "--public-key"
        if state is not None and state.public_key != pinned_key:
            notes.append("re-pinned the key given by --public-key")
    elif state is not None:
        public_key, key_source = state.public_key, f"the state file {state_path}"
    else:
        public_key, key_source = client.public_key(), "the log on this first run"
        notes.append("key trusted on first use")
    saved = state.head if state is not None else None
    head = check_signature(client.get_json("/tree-head"), public_key, key_source, saved)
    history = check_consistency(client, saved, head) if saved is not None else "first run"
    size = head["tree_size"]
    sample = set(random.SystemRandom().sample(range(size), min(samples, size)))
    leaves = check_export(client, head, sample)
    check_inclusion(client, head, leaves)
    try:
        save_state(state_path, client.base_url, public_key, head)
    except OSError as error:
        raise CouldNotCheck(f"the log checked out, but the state was not saved: {error}") from error
    return (
        f"ok: {client.base_url} tree_size={size} root_hash={head['root_hash']} "
        f"timestamp={head['timestamp']} key_id={head['key_id'][:16]}; {history}; "
        f"the export's first {size} transactions hash to it; "
        f"{len(leaves)} inclusion proofs verified"
        + "".join(f"; {note}" for note in notes)
        + f"; state saved to {state_path}"
    )


# --- Command line ---------------------------------------------------------------------


def base_url_argument(value: str) -> str:
    """An http(s) base URL without query, fragment or credentials, without its trailing
    slash; ``argparse.ArgumentTypeError`` (a ``ValueError``) otherwise."""
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a URL: {value!r}") from error
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    if parts.query or parts.fragment or parts.username is not None:
        raise argparse.ArgumentTypeError(f"a base URL has no query, fragment or user: {value!r}")
    return value.rstrip("/")


def _samples_argument(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {value!r}")
    return int(value)


def _timeout_argument(value: str) -> float:
    with contextlib.suppress(ValueError):
        if 0 < (seconds := float(value)) < float("inf"):
            return seconds
    raise argparse.ArgumentTypeError(f"not a number of seconds > 0: {value!r}")


def _key_argument(value: str) -> bytes:
    raw = decode_public_key(value)
    if raw is None:
        raise argparse.ArgumentTypeError("not the base64 of a raw 32-byte Ed25519 public key")
    return raw


EPILOG = """\
exit status:
  0  everything holds; one summary line on stdout, the new head saved as the state
  1  the log is inconsistent: fork, rewritten history, bad signature (or changed key),
     wrong root, or bad proof; stderr names which and shows the heads
  2  could not check: bad arguments, network error or timeout, HTTP error, unexpected
     response, unreadable state file (proves nothing either way; run again later)

The state file pins the log's key and keeps the last head checked; without it the first
run trusts the key the log serves. Only http(s) URLs are followed.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.witness",
        description=(
            "Witness a Lianxin Market ledger log: verify its signed tree head, that it\n"
            "extends the head saved in the state file (consistency proof), that the export\n"
            "hashes to its root, and K random inclusion proofs."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "base_url", metavar="BASE_URL", type=base_url_argument, help="e.g. https://shop.example"
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        required=True,
        type=Path,
        help="JSON state: the pinned key and the last head checked (created on the first run)",
    )
    parser.add_argument(
        "--samples",
        metavar="K",
        type=_samples_argument,
        default=DEFAULT_SAMPLES,
        help=f"random inclusion proofs to check (default {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--public-key",
        metavar="B64",
        type=_key_argument,
        help="pin this Ed25519 key (base64 of its raw 32 bytes) instead of the state's "
        "or the log's",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_timeout_argument,
        default=DEFAULT_TIMEOUT,
        help=f"per connection and per read (default {DEFAULT_TIMEOUT:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the witness with command-line arguments; the exit status (0, 1 or 2)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a bad argument (2)
        code = exit_.code
        return OK if code is None else code if isinstance(code, int) else COULD_NOT_CHECK
    try:
        summary = run(args.base_url, args.state, args.samples, args.public_key, args.timeout)
    except Inconsistent as problem:
        print(f"INCONSISTENT: {problem.kind}: {problem.detail}", file=sys.stderr)
        for label, head in problem.heads:
            print(f"  {label}: {_show(head)}", file=sys.stderr)
        return INCONSISTENT
    except CouldNotCheck as problem:
        print(f"could not check: {problem}", file=sys.stderr)
        return COULD_NOT_CHECK
    print(summary)
    return OK


if __name__ == "__main__":
    sys.exit(main())
