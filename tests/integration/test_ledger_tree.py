"""The ledger's Merkle tree as stored and served (issue 18): grown by every posting in
the same transaction, equal to the tree recomputed from the public export, signed heads
kept, proofs that verify with nothing but the head, and 4xx answers for what does not
exist. The hashing itself is checked against the RFC 6962 reference vectors in
``tests/unit/test_merkle.py``; the witness against a fake log in ``test_witness.py``."""

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ledger import (
    check_tree,
    ensure_account,
    leaf_hash,
    post,
    post_many,
    tree_root,
    verify_consistency,
    verify_head,
    verify_inclusion,
)
from ledger.merkle import root_of
from shop.extensions import db
from tests.builders import in_app_thread

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


@pytest.fixture
def books(app):
    ensure_account(db.session, "alipay:clearing", "clearing")
    ensure_account(db.session, "enterprise:1", "enterprise")
    for n in range(1, 4):
        ensure_account(db.session, f"household:T-{n}", "household")
    db.session.commit()
    return db.session


def sale(n: int):
    return post(
        db.session,
        f"sale:TREE{n}",
        "sale",
        [
            ("alipay:clearing", 1000 + n),
            (f"household:T-{1 + n % 3}", -300),
            ("enterprise:1", -(700 + n)),
        ],
        now=T0 + timedelta(minutes=n),
    )


def exported(client) -> list[dict]:
    body = client.get("/api/v1/ledger/export.jsonl").get_data(as_text=True)
    return [json.loads(line) for line in body.splitlines() if line]


def test_every_posting_grows_the_tree_and_proofs_verify_against_signed_heads(app, books):
    client = app.test_client()
    assert client.get("/api/v1/ledger/tree-head").status_code == 404  # nothing signed yet
    for n in range(5):
        sale(n)
    db.session.commit()
    assert "signed" in app.test_cli_runner().invoke(args=["ledger", "sign-head"]).output
    first = client.get("/api/v1/ledger/tree-head").get_json()
    for n in range(5, 13):
        sale(n)
    db.session.commit()
    app.test_cli_runner().invoke(args=["ledger", "sign-head"])
    second = client.get("/api/v1/ledger/tree-head").get_json()
    assert (first["tree_size"], second["tree_size"]) == (5, 13)

    lines = exported(client)
    leaves = [leaf_hash(bytes.fromhex(line["hash"])) for line in lines]
    # The served root is the root of the export, recomputed from scratch.
    assert second["root_hash"] == root_of(leaves).hex()
    assert first["root_hash"] == root_of(leaves[:5]).hex()
    key = client.get("/api/v1/ledger/public-key").get_json()
    raw_key = base64.b64decode(key["public_key"])
    assert key["algorithm"] == "Ed25519" and verify_head(second, raw_key)
    assert not verify_head({**second, "tree_size": 12}, raw_key)
    # Every transaction's audit path, against the head, by nobody's code but the verifier.
    for line in lines:
        proof = client.get(f"/api/v1/ledger/proof/inclusion?transaction_id={line['id']}").get_json()
        assert proof["tree_size"] == 13 and proof["leaf_index"] == line["id"] - 1
        path = [bytes.fromhex(node) for node in proof["audit_path"]]
        assert verify_inclusion(
            leaves[line["id"] - 1],
            proof["leaf_index"],
            13,
            path,
            bytes.fromhex(second["root_hash"]),
        )
    # The earlier head is still served, and the later tree extends it.
    assert client.get("/api/v1/ledger/tree-head?tree_size=5").get_json() == first
    consistency = client.get("/api/v1/ledger/proof/consistency?first=5&second=13").get_json()
    assert verify_consistency(
        5, 13, bytes.fromhex(first["root_hash"]), bytes.fromhex(second["root_hash"]),
        [bytes.fromhex(node) for node in consistency["proof"]],
    )  # fmt: skip
    # A head is made only when the tree grew.
    assert "unchanged" in app.test_cli_runner().invoke(args=["ledger", "sign-head"]).output
    assert check_tree(db.session) == []


@pytest.mark.parametrize(
    "url, status",
    [
        ("/api/v1/ledger/proof/inclusion?transaction_id=999", 404),
        ("/api/v1/ledger/proof/inclusion?transaction_id=99999999999999999", 404),
        ("/api/v1/ledger/proof/inclusion?transaction_id=abc", 400),
        ("/api/v1/ledger/proof/inclusion?transaction_id=-1", 400),
        ("/api/v1/ledger/proof/inclusion?transaction_id=%00", 400),
        ("/api/v1/ledger/proof/inclusion", 400),
        ("/api/v1/ledger/proof/inclusion?transaction_id=1&tree_size=7", 404),
        ("/api/v1/ledger/proof/consistency?first=3&second=2", 422),
        ("/api/v1/ledger/proof/consistency?first=1&second=99", 404),
        ("/api/v1/ledger/proof/consistency?first=1", 400),
        ("/api/v1/ledger/proof/consistency?first=１&second=3", 400),
        ("/api/v1/ledger/tree-head?tree_size=4", 404),
        ("/api/v1/ledger/tree-head?tree_size=1e3", 400),
    ],
)
def test_what_does_not_exist_is_a_4xx_json_error(app, books, url, status):
    for n in range(3):
        sale(n)
    db.session.commit()
    app.test_cli_runner().invoke(args=["ledger", "sign-head"])
    response = app.test_client().get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["message"]


def test_a_rewritten_transaction_is_caught_by_ledger_verify(app, books):
    for n in range(6):
        sale(n)
    db.session.commit()
    app.test_cli_runner().invoke(args=["ledger", "sign-head"])
    assert app.test_cli_runner().invoke(args=["ledger", "verify"]).exit_code == 0
    # An intruder with the database owner's rights replaces a stored leaf.
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SET LOCAL session_replication_role = replica"))
    else:
        for (name,) in db.session.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ).all():
            db.session.execute(sa.text(f'DROP TRIGGER "{name}"'))
    db.session.execute(
        sa.text("UPDATE ledger_tree_node SET hash = :h WHERE node = 2"),
        {"h": bytes(32)},
    )
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert "tree leaf 2" in result.output + (result.stderr if result.stderr_bytes else "")


def test_a_batch_grows_the_tree_as_postings_one_by_one_would(app, books):
    from ledger import NewTransaction

    items = [
        NewTransaction(f"sale:BATCH{n}", "sale",
                       [("alipay:clearing", 500), (f"household:T-{1 + n % 3}", -100),
                        ("enterprise:1", -400)], now=T0 + timedelta(minutes=n))
        for n in range(11)
    ]  # fmt: skip
    post_many(db.session, items)
    db.session.commit()
    leaves = [leaf_hash(bytes.fromhex(line["hash"])) for line in exported(app.test_client())]
    assert tree_root(db.session, 11) == root_of(leaves)
    assert check_tree(db.session) == []


@pytest.mark.postgres_only
def test_concurrent_postings_never_share_a_leaf_and_the_root_matches_the_export(app, books):
    def post_some(worker):
        for n in range(6):
            sale(worker * 100 + n)
            db.session.commit()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda w: in_app_thread(app, post_some, w), range(8)))
    db.session.expire_all()
    leaves = [leaf_hash(bytes.fromhex(line["hash"])) for line in exported(app.test_client())]
    assert len(leaves) == 48
    assert tree_root(db.session, 48) == root_of(leaves)
    assert check_tree(db.session) == []


def _saved(tmp_path, name, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_the_standalone_verifier_checks_the_export_against_a_signed_head(
    app, books, tmp_path, capsys
):
    from ledger.verify import main as verify_main

    for n in range(7):
        sale(n)
    db.session.commit()
    app.test_cli_runner().invoke(args=["ledger", "sign-head"])
    client = app.test_client()
    head = client.get("/api/v1/ledger/tree-head").get_json()
    key = client.get("/api/v1/ledger/public-key").get_json()["public_key"]
    export = _saved(
        tmp_path, "export.jsonl", client.get("/api/v1/ledger/export.jsonl").get_data(as_text=True)
    )
    args = [export, "--tree-head", _saved(tmp_path, "head.json", head), "--public-key", key]
    assert verify_main(args) == 0
    assert "root " + head["root_hash"] + " matches; signature valid" in capsys.readouterr().out
    # A head whose root is not this export's, or whose signature is not the key's.
    forged = {**head, "root_hash": "ab" * 32}
    assert verify_main([export, "--tree-head", _saved(tmp_path, "f.json", forged)]) == 1
    assert "not the history that head was signed for" in capsys.readouterr().out
    resigned = {**head, "timestamp": "2030-01-01T00:00:00Z"}
    args = [export, "--tree-head", _saved(tmp_path, "r.json", resigned), "--public-key", key]
    assert verify_main(args) == 1
    assert "signature does not verify" in capsys.readouterr().out
    # An export cut short of the head.
    short = _saved(tmp_path, "short.jsonl", "".join(open(export).readlines()[:3]))
    assert verify_main([short, "--tree-head", _saved(tmp_path, "head.json", head)]) == 1
    assert "larger than this export" in capsys.readouterr().out


def test_a_witness_follows_the_live_shop_and_passes_while_it_grows(app, books, tmp_path):
    from ledger.witness import main as witness_main
    from tests.live_server import live_server

    state = str(tmp_path / "witness.json")
    for n in range(4):
        sale(n)
    db.session.commit()
    app.test_cli_runner().invoke(args=["ledger", "sign-head"])
    with live_server(app) as base_url:
        assert witness_main([base_url, "--state", state]) == 0
        for n in range(4, 11):
            sale(n)
        db.session.commit()
        app.test_cli_runner().invoke(args=["ledger", "sign-head"])
        assert witness_main([base_url, "--state", state, "--samples", "5"]) == 0
    assert json.loads(open(state).read())["head"]["tree_size"] == 11


def test_two_signers_at_once_keep_one_head_and_neither_fails(app, books, monkeypatch):
    """The jobs worker on two hosts signs the same size at the same moment: the primary
    key keeps the first head, the second signer answers "nothing new"."""
    from ledger import TreeHead, sign_head
    from shop.transparency import services as transparency

    for n in range(3):
        sale(n)
    db.session.commit()

    def other_host_signs_first(key, size, root, stamp):
        def publish_elsewhere():
            db.session.add(TreeHead(**sign_head(key, size, root, "2026-12-04T08:00:00Z")))
            db.session.commit()

        in_app_thread(app, publish_elsewhere)
        return sign_head(key, size, root, stamp)

    monkeypatch.setattr(transparency, "sign_head", other_host_signs_first)
    assert transparency.publish() is None
    heads = db.session.scalars(sa.select(TreeHead)).all()
    assert [(h.tree_size, h.timestamp) for h in heads] == [(3, "2026-12-04T08:00:00Z")]


def test_a_head_signed_beyond_the_chain_and_a_tree_missing_nodes_are_named(app, books):
    from ledger import LedgerError, TreeHead

    for n in range(4):
        sale(n)
    db.session.commit()
    # A database restored from a backup older than a head it had published.
    db.session.add(TreeHead(tree_size=9, root_hash="ab" * 32, timestamp="2026-12-04T08:00:00Z",
                            key_id="cd" * 32, signature="x"))  # fmt: skip
    db.session.commit()
    assert any("signed at size 9 but the chain holds 4" in p for p in check_tree(db.session))
    # Postings by code older than 0019 wrote no nodes: a new posting refuses to build on it.
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SET LOCAL session_replication_role = replica"))
    else:
        for (name,) in db.session.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ).all():
            db.session.execute(sa.text(f'DROP TRIGGER "{name}"'))
    db.session.execute(sa.text("DELETE FROM ledger_tree_node WHERE node >= 3"))
    db.session.commit()
    with pytest.raises(LedgerError, match="lacks nodes"):
        sale(4)
    db.session.rollback()


def test_a_tree_head_file_without_its_fields_is_refused_plainly(app, books, tmp_path, capsys):
    from ledger.verify import main as verify_main

    sale(0)
    db.session.commit()
    export = _saved(
        tmp_path,
        "e.jsonl",
        app.test_client().get("/api/v1/ledger/export.jsonl").get_data(as_text=True),
    )
    head = _saved(tmp_path, "h.json", {"tree_size": 1, "root_hash": "ab" * 32})
    key = base64.b64encode(bytes(32)).decode()
    assert verify_main([export, "--tree-head", head, "--public-key", key]) == 1
    assert "FAILED" in capsys.readouterr().out
