"""The witness (``python -m ledger.witness``) against a fake log served over real HTTP.

The fake log is built here from a real hash chain of made-up transactions (random memos,
chained with ``ledger.canonical``) and its Merkle tree with ``ledger.merkle`` (nodes
kept in a dict), signs its heads with a test key, and serves the
five endpoints of the public contract on 127.0.0.1 from a ``ThreadingHTTPServer``. Each
test then makes it honest or not and runs ``ledger.witness.main`` in-process.
"""

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import witness
from ledger.canonical import GENESIS_HASH, MerkleRoot, chain_hash
from ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    nodes_to_store,
    root_at,
    root_of,
)
from ledger.tree_head import key_id, public_key_raw, sign_head

ROOT_DIR = Path(__file__).resolve().parents[2]
API = "/api/v1/ledger"


class FakeLog:
    """A Merkle log of transaction hashes, with the knobs a dishonest log would turn."""

    def __init__(self, count: int = 0):
        self.key = Ed25519PrivateKey.generate()
        self.hashes: list[bytes] = []
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.heads: dict[int, dict] = {}  # every head published, by size
        self.latest: dict | None = None
        self.requests: list[str] = []
        self.served_head: dict | None = None  # overrides ``latest`` when set
        self.transactions: list[dict] = []  # the chain, as the export serves it
        self.export_transactions: list[dict] | None = None  # overrides it in the export
        self.tamper_audit_path = False
        self.redirect_to: str | None = None  # every request answered 302 to there
        self.cut_export_short = False  # half the export sent, all of it promised
        self.seconds = 0
        self.append(count)

    def append(self, count: int, memos: list[str] | None = None) -> None:
        for n in range(count):
            tx = made_up_transaction(self.transactions, memos[n] if memos else None)
            self.transactions.append(tx)
            data = bytes.fromhex(tx["hash"])
            for level, index, hash_ in nodes_to_store(len(self.hashes), leaf_hash(data), self.get):
                self.nodes[level, index] = hash_
            self.hashes.append(data)

    def rewrite(self, index: int) -> None:
        """Change transaction ``index``'s memo and re-chain and rebuild everything from
        it, as an intruder who rewrites history and recomputes every later hash would."""
        memos = [tx["memo"] for tx in self.transactions]
        memos[index] = "改过 " + os.urandom(4).hex()
        self.hashes, self.nodes, self.transactions = [], {}, []
        self.append(len(memos), memos)

    def get(self, level: int, index: int) -> bytes:
        return self.nodes[level, index]

    def root(self, size: int | None = None) -> bytes:
        return root_at(len(self.hashes) if size is None else size, self.get)

    def sign(self, size: int | None = None, root: bytes | None = None) -> dict:
        size = len(self.hashes) if size is None else size
        self.seconds += 1
        stamp = f"2026-12-04T20:{self.seconds // 60:02d}:{self.seconds % 60:02d}Z"
        return sign_head(self.key, size, self.root(size) if root is None else root, stamp)

    def publish(self) -> dict:
        self.latest = self.heads[len(self.hashes)] = self.sign()
        return self.latest

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(public_key_raw(self.key)).decode()

    # --- the endpoints: (status, JSON) or (status, bytes) ---

    def respond(self, path: str, query: dict[str, str]):
        get = self.get
        if path == f"{API}/public-key":
            raw = public_key_raw(self.key)
            return 200, {
                "algorithm": "Ed25519",
                "public_key": base64.b64encode(raw).decode(),
                "key_id": key_id(raw),
            }
        if path == f"{API}/tree-head":
            if "tree_size" in query:
                head = self.heads.get(int(query["tree_size"]))
                return (200, head) if head else error(404, "no_such_head")
            return 200, self.served_head or self.latest
        if path == f"{API}/export.jsonl":
            served = (
                self.transactions if self.export_transactions is None else self.export_transactions
            )
            lines = (json.dumps(tx, ensure_ascii=False) for tx in served)
            return 200, "".join(line + "\n" for line in lines).encode("utf-8")
        if path == f"{API}/proof/inclusion":
            tx_id, size = int(query["transaction_id"]), int(query["tree_size"])
            if not 1 <= tx_id <= size <= len(self.hashes):
                return error(404, "no_such_transaction")
            audit_path = inclusion_proof(tx_id - 1, size, get)
            if self.tamper_audit_path and audit_path:
                audit_path[0] = hashlib.sha256(audit_path[0]).digest()
            return 200, {
                "transaction_id": tx_id,
                "leaf_index": tx_id - 1,
                "tree_size": size,
                "leaf_hash": leaf_hash(self.hashes[tx_id - 1]).hex(),
                "audit_path": [h.hex() for h in audit_path],
                "root_hash": self.root(size).hex(),
            }
        if path == f"{API}/proof/consistency":
            first, second = int(query["first"]), int(query["second"])
            if not 0 <= first <= second <= len(self.hashes):
                return error(400, "bad_sizes")
            proof = consistency_proof(first, second, get)
            return 200, {"first": first, "second": second, "proof": [h.hex() for h in proof]}
        return error(404, "not_found")


def made_up_transaction(before: list[dict], memo: str | None = None) -> dict:
    """The next transaction of a real hash chain (random memo: random hashes)."""
    tx = {
        "id": len(before) + 1,
        "key": f"sale:T{len(before) + 1}",
        "kind": "sale",
        "created_at": "2026-12-04T08:00:00.000000Z",
        "memo": os.urandom(8).hex() if memo is None else memo,
        "reverses": None,
        "entries": [
            {"account": "alipay:clearing", "amount_fen": 15800},
            {"account": "household:SJ-001", "amount_fen": -15800},
        ],
        "prev_hash": before[-1]["hash"] if before else GENESIS_HASH,
    }
    tx["hash"] = chain_hash(tx["prev_hash"], tx)
    return tx


def error(status: int, code: str):
    return status, {"error": {"code": code, "message": code.replace("_", " ")}}


def serve(log: FakeLog) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            log.requests.append(self.path)
            if log.redirect_to:
                self.send_response(302)
                self.send_header("Location", log.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, body = log.respond(url.path, dict(urllib.parse.parse_qsl(url.query)))
            bytes_body = isinstance(body, bytes)
            if not bytes_body:
                body = json.dumps(body).encode()
                kind = "application/json"
            else:
                kind = "application/x-ndjson"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(
                body[: len(body) // 2] if log.cut_export_short and bytes_body else body
            )

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    return server, thread


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def log() -> FakeLog:
    return FakeLog(37)


@pytest.fixture
def url(log):
    server, thread = serve(log)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "witness.json"


def run(capsys, *argv) -> tuple[int, str]:
    code = witness.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out + err


def saved_head(state: Path) -> dict:
    return json.loads(state.read_text())["head"]


def start(capsys, log, url, state) -> dict:
    """A first, honest run at the log's current size; the head it saved."""
    head = log.publish()
    code, out = run(capsys, url, "--state", state)
    assert code == 0, out
    assert saved_head(state) == head
    return head


# --- The incremental root ----------------------------------------------------------------


def test_the_incremental_root_is_rfc6962s_root_at_every_size():
    leaves = [leaf_hash(os.urandom(32)) for _ in range(70)]
    tree = MerkleRoot()
    assert tree.root() == root_of([])
    for n, leaf in enumerate(leaves, start=1):
        tree.add_leaf_hash(leaf)
        assert tree.size == n
        assert tree.root() == root_of(leaves[:n])
        assert len(tree._stack) == bin(n).count("1")  # one subtree root per 1 bit


# --- An honest log -----------------------------------------------------------------------


def test_an_honest_growing_log_passes_twice(capsys, log, url, state):
    first = start(capsys, log, url, state)
    assert f"{API}/public-key" in log.requests  # first run: trust on first use
    state_text = json.loads(state.read_text())
    assert state_text["public_key"] == log.public_key_b64
    assert state_text["version"] == 1

    log.append(21)
    log.publish()
    log.requests.clear()
    code, out = run(capsys, url, "--state", state, "--samples", 5)
    assert code == 0, out
    assert out.count("\n") == 1 and out.startswith("ok: ")
    assert "tree_size=58" in out and "consistent with the saved head of 37" in out
    assert f"{API}/proof/consistency?first=37&second=58" in log.requests
    assert f"{API}/public-key" not in log.requests  # the state pins the key
    assert sum("/proof/inclusion?" in r for r in log.requests) == 5
    assert saved_head(state)["tree_size"] == 58
    assert saved_head(state) != first

    # Unchanged since: no proof needed, still checked against the export.
    code, out = run(capsys, url, "--state", state, "--samples", 0)
    assert code == 0, out
    assert "unchanged since the saved head of 58" in out


def test_an_export_that_has_grown_past_the_head_still_checks(capsys, log, url, state):
    log.publish()
    log.append(10)  # posted after the head was signed
    code, out = run(capsys, url, "--state", state)
    assert code == 0, out
    assert "tree_size=37" in out


def test_an_empty_log_then_a_grown_one(capsys, state):
    log = FakeLog(0)
    server, thread = serve(log)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        start(capsys, log, url, state)
        log.append(3)
        log.publish()
        code, out = run(capsys, url, "--state", state)
        assert code == 0, out
        assert not any("consistency" in r for r in log.requests)  # from 0: nothing to prove
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_pinned_key_needs_no_key_request(capsys, log, url, state):
    log.publish()
    code, out = run(capsys, url, "--state", state, "--public-key", log.public_key_b64)
    assert code == 0, out
    assert f"{API}/public-key" not in log.requests


# --- A dishonest log ---------------------------------------------------------------------


def test_a_rewritten_history_is_caught(capsys, log, url, state):
    before = start(capsys, log, url, state)
    log.rewrite(5)  # one old transaction changed, every later hash recomputed …
    log.append(10)  # … and the tree rebuilt, grown and re-signed
    after = log.publish()
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "rewritten history" in out
    assert before["root_hash"] in out and after["root_hash"] in out
    assert saved_head(state) == before  # nothing saved


def test_a_shrunk_tree_is_a_rewritten_history(capsys, log, url, state):
    before = start(capsys, log, url, state)
    log.served_head = log.sign(30)
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "rewritten history" in out and "shrank from 37 to 30" in out
    assert before["root_hash"] in out and log.served_head["root_hash"] in out
    assert saved_head(state) == before


def test_two_heads_of_the_same_size_are_a_fork(capsys, log, url, state):
    before = start(capsys, log, url, state)
    log.rewrite(len(log.hashes) - 1)  # same size, another last transaction
    other = log.publish()
    assert other["tree_size"] == before["tree_size"]
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "fork" in out
    assert before["root_hash"] in out and other["root_hash"] in out
    assert saved_head(state) == before


def test_a_bad_signature_is_caught(capsys, log, url, state):
    head = log.publish()
    signature = bytearray(base64.b64decode(head["signature"]))
    signature[10] ^= 0x40
    log.served_head = {**head, "signature": base64.b64encode(bytes(signature)).decode()}
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "bad signature" in out
    assert not state.exists()


def test_a_head_with_a_tampered_root_is_a_bad_signature(capsys, log, url, state):
    start(capsys, log, url, state)
    log.append(4)
    honest = log.publish()
    log.served_head = {**honest, "root_hash": hashlib.sha256(b"x").hexdigest()}
    code, out = run(capsys, url, "--state", state)
    assert code == 1 and "bad signature" in out


def test_a_changed_key_is_reported(capsys, log, url, state):
    before = start(capsys, log, url, state)
    log.key = Ed25519PrivateKey.generate()  # the log now signs with another key
    log.append(3)
    log.publish()
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "bad signature" in out and "changed key" in out
    assert key_id(public_key_raw(log.key)) in out
    assert saved_head(state) == before

    # Re-pinned by hand, the same history checks out under the new key.
    code, out = run(capsys, url, "--state", state, "--public-key", log.public_key_b64)
    assert code == 0, out
    assert "re-pinned" in out
    assert json.loads(state.read_text())["public_key"] == log.public_key_b64


def test_a_wrong_pinned_key_is_a_bad_signature(capsys, log, url, state):
    log.publish()
    other = base64.b64encode(public_key_raw(Ed25519PrivateKey.generate())).decode()
    code, out = run(capsys, url, "--state", state, "--public-key", other)
    assert code == 1 and "bad signature" in out


def test_an_export_that_does_not_match_the_root_is_caught(capsys, log, url, state):
    log.publish()
    honest = list(log.transactions)
    log.rewrite(20)  # a consistent chain, but not the one the head was signed for
    log.export_transactions, log.transactions = log.transactions, honest
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "wrong root" in out and log.latest["root_hash"] in out
    assert not state.exists()


def test_an_export_line_whose_hash_is_not_its_content_is_caught(capsys, log, url, state):
    log.publish()
    # The amount edited, the hash left as it was: the leaves (hashes) still match.
    edited = [dict(tx) for tx in log.transactions]
    edited[7]["entries"] = [{"account": "alipay:clearing", "amount_fen": 1},
                            {"account": "household:SJ-001", "amount_fen": -1}]  # fmt: skip
    log.export_transactions = edited
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "rewritten history" in out and "export line 8" in out and "broken chain" in out


def test_a_short_export_is_a_wrong_root(capsys, log, url, state):
    log.publish()
    log.export_transactions = log.transactions[:-1]
    code, out = run(capsys, url, "--state", state)
    assert code == 1
    assert "wrong root" in out and "36 transactions" in out


def test_a_bad_inclusion_proof_is_caught(capsys, log, url, state):
    log.publish()
    log.tamper_audit_path = True
    code, out = run(capsys, url, "--state", state, "--samples", 3)
    assert code == 1
    assert "bad proof" in out
    assert not state.exists()


# --- Could not check ---------------------------------------------------------------------


def test_a_log_that_is_down_could_not_be_checked(capsys, state):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out = run(capsys, f"http://127.0.0.1:{port}", "--state", state, "--timeout", 2)
    assert code == 2
    assert "could not check" in out
    assert not state.exists()


def test_an_http_error_could_not_be_checked(capsys, log, url, state):
    log.publish()
    code, out = run(capsys, url + "no/such/prefix", "--state", state)
    assert code == 2
    assert "HTTP 404" in out and "not_found" in out


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/export"])
def test_a_redirect_off_http_is_refused(capsys, log, url, state, target):
    log.publish()
    log.redirect_to = target
    code, out = run(capsys, url, "--state", state)
    assert code == 2
    assert "HTTP 302" in out and target in out
    assert "refused" in out or "not allowed" in out


def test_an_export_cut_off_in_transit_could_not_be_checked(capsys, log, url, state):
    log.publish()
    log.cut_export_short = True
    code, out = run(capsys, url, "--state", state)
    assert code == 2
    assert "cut off after" in out
    assert not state.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["ftp://127.0.0.1/", "--state", "s.json"],
        ["file:///etc/passwd", "--state", "s.json"],
        ["http://127.0.0.1/?x=1", "--state", "s.json"],
        ["http://127.0.0.1/"],  # no --state
        ["http://127.0.0.1/", "--state", "s.json", "--samples", "-1"],
        ["http://127.0.0.1/", "--state", "s.json", "--timeout", "0"],
        ["http://127.0.0.1/", "--state", "s.json", "--public-key", "bm9wZQ=="],
    ],
)
def test_bad_arguments_could_not_be_checked(capsys, argv):
    code, _out = run(capsys, *argv)
    assert code == 2


def test_a_damaged_state_file_could_not_be_checked(capsys, log, url, state):
    start(capsys, log, url, state)
    data = json.loads(state.read_text())
    data["head"]["tree_size"] = 1  # edited by hand: its signature no longer holds
    state.write_text(json.dumps(data))
    code, out = run(capsys, url, "--state", state)
    assert code == 2 and "state file" in out
    state.write_text("{not json")
    code, out = run(capsys, url, "--state", state)
    assert code == 2 and "state file" in out


def test_help_runs_as_a_module_importing_no_database_or_web_code():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ledger.witness", "--help"],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: python -m ledger.witness" in done.stdout
    assert "exit status" in done.stdout and "could not check" in done.stdout
    # -X importtime lists every module imported, one per line: "import time: … | name".
    imported = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()}
    assert "ledger.witness" in imported or "ledger.merkle" in imported
    bad = sorted(n for n in imported if n.split(".")[0] in ("sqlalchemy", "flask", "shop"))
    assert bad == []
