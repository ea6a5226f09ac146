"""The OpenAPI 3.0 description of ``/api/v1`` — the contract buyers' apps rely on.

Invariant: every status an operation can answer is listed under it, with its body's
schema and the error codes it may carry, and every parameter states the bounds the
route enforces; the links say which answer feeds which call (place an order, then read
it by its token). Schemathesis fuzzes the API from this document and fails on any
answer the document does not describe (``tests/functional/test_api_fuzz.py``).
"""

from shop.api.schemas import ERROR_CODES, SCHEMAS, error_schema
from shop.db import MAX_ROW_ID
from shop.households.services import CODE_MAX
from shop.orders.services import ORDER_TOKEN

CHANGES_PAGE_MAX = 200
_SECONDS = {"type": "integer", "minimum": 0}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "requests allowed in the window",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "requests left in the window",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "when the window resets (Unix time, seconds)",
        "schema": {"type": "integer"},
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict, **extra) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _error(description: str, codes: list[str] | None = None, headers: dict | None = None) -> dict:
    answer = _json(description, error_schema(codes) if codes else _ref("Error"))
    if headers:
        answer["headers"] = headers
    return answer


def _retry_after(required: bool) -> dict:
    return {
        "Retry-After": {
            "description": "seconds to wait before trying again",
            "required": required,
            "schema": _SECONDS,
        }
    }


_UNAVAILABLE = _error(
    "the database is unavailable or the transaction had to give way; nothing was "
    "written, the same request may be retried after Retry-After",
    ["database_unavailable"],
    _retry_after(True),
)


def _read(operation_id: str, summary: str, ok: dict, parameters=(), **responses) -> dict:
    """A read: rate limited per client address (``API_READ_RATE_LIMIT``)."""
    ok = {**ok, "headers": {**ok.get("headers", {}), **_RATE_HEADERS}}
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            **({"parameters": list(parameters)} if parameters else {}),
            "responses": {
                "200": ok,
                **responses,
                "429": _error(
                    "too many reads from this client address (API_READ_RATE_LIMIT, 300 a "
                    "minute unless configured)",
                    ERROR_CODES[429],
                    {**_retry_after(True), **_RATE_HEADERS},
                ),
                "503": _UNAVAILABLE,
            },
        }
    }


def _mine(operation_id: str, summary: str, ok: dict) -> dict:
    """A read of the token owner's own data (``Authorization: Bearer lx_…``)."""
    operation = _read(operation_id, summary, ok)
    operation["get"]["security"] = [{"personalToken": []}]
    operation["get"]["responses"]["401"] = _error(
        "no token, or one that is unknown or revoked",
        ["unauthorized"],
        {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    )
    return operation


def _query(name: str, schema: dict, description: str = "") -> dict:
    parameter = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


_TOKEN = {"type": "string", "pattern": f"^{ORDER_TOKEN.pattern}$"}
# A tree size or transaction id in a query: ASCII digits, at most 18 (a bigint).
_COUNT = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}


def openapi_document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Lianxin Market API",
            "version": "1.0.0",
            "description": "Products, orders and public transparency data. Money is "
            'integer fen. Every error is {"error": {"code", "message", "field"?}}; '
            "no input is answered 500. Reads are limited per client address.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/products": _read(
                "listProducts",
                "Published products",
                _json(
                    "products on sale",
                    _ref("ProductList"),
                    links={
                        "OrderFirstProduct": {
                            "operationId": "createOrder",
                            "description": "buy one unit of the first product listed",
                            "requestBody": {
                                "items": [
                                    {"product_id": "$response.body#/products/0/id", "quantity": 1}
                                ]
                            },
                        }
                    },
                ),
            ),
            "/orders": {
                "post": {
                    "operationId": "createOrder",
                    "summary": "Place an order and get the Alipay payment URL",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("OrderRequest")}},
                    },
                    "responses": {
                        "201": _json(
                            "order placed, stock reserved until expires_at",
                            _ref("OrderCreated"),
                            links={
                                "GetOrderByToken": {
                                    "operationId": "getOrder",
                                    "description": "the order just placed",
                                    "parameters": {"token": "$response.body#/token"},
                                }
                            },
                        ),
                        "409": _error(
                            "not enough stock (out_of_stock; details name the product)",
                            ["out_of_stock"],
                        ),
                        "413": _error("the body is over 1 MiB", ERROR_CODES[413]),
                        "422": _error(
                            "the body is not an order (invalid, invalid_json, invalid_text: "
                            "field names the input), a product is not on sale "
                            "(unknown_product), or one product's lines add up to more than "
                            "the most one order may buy (quantity_limit)",
                            [
                                "invalid",
                                "invalid_json",
                                "invalid_text",
                                "unknown_product",
                                "quantity_limit",
                            ],
                        ),
                        "429": _error(
                            "too many orders from this client address (30 a minute), or the "
                            "phone, account or client address already holds as many unpaid "
                            "orders or units as it may (too_many_unpaid_orders)",
                            ["too_many_requests", "too_many_unpaid_orders"],
                            {**_retry_after(False), **_RATE_HEADERS},
                        ),
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/orders/{token}": _read(
                "getOrder",
                "An order by its private token (public view: no phone, address or name)",
                _json("the order", _ref("Order")),
                [{"name": "token", "in": "path", "required": True, "schema": _TOKEN}],
                **{"404": _error("no such order", ERROR_CODES[404])},
            ),
            "/board": _read(
                "getBoard",
                "The love board: all-time totals, the period's totals, top buyers and "
                "organisations of the period, recent purchases (buyers only as they chose "
                "to appear). Answers 304 to a matching If-None-Match.",
                _json(
                    "the board",
                    _ref("Board"),
                    headers={
                        "ETag": {
                            "description": "names the board's state",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    },
                ),
                [
                    _query(
                        "period",
                        {"type": "string", "enum": ["today", "month", "all"], "default": "all"},
                        "period of the rankings (Asia/Shanghai days)",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                        "rows in each ranking",
                    ),
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                **{
                    "304": {"description": "unchanged since the ETag given"},
                    "422": _error("bad period or limit", ["invalid_period", "invalid_limit"]),
                },
            ),
            "/households": _read(
                "listHouseholds",
                "Every household (masked) with its income by channel, in fen",
                _json(
                    "the results board",
                    _ref("HouseholdList"),
                    links={
                        "ChangesOfFirstHousehold": {
                            "operationId": "listChanges",
                            "parameters": {"household": "$response.body#/households/0/code"},
                        }
                    },
                ),
            ),
            "/changes": _read(
                "listChanges",
                "Approved changes to households, benefit rules and the register (four "
                "eyes), newest first; cards, names and ID numbers masked",
                _json("one page of the public change log", _ref("ChangePage")),
                [
                    _query(
                        "household",
                        {"type": "string", "pattern": f"^[A-Za-z0-9-]{{0,{CODE_MAX}}}$"},
                        "a household code (any case); empty: every household",
                    ),
                    _query(
                        "before",
                        {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
                        "changes with a smaller id (the next page)",
                    ),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": CHANGES_PAGE_MAX,
                            "default": 50,
                        },
                    ),
                ],
                **{"400": _error("household, before or limit out of bounds", ERROR_CODES[400])},
            ),
            "/ledger/head": _read(
                "getLedgerHead",
                "The hash chain's head: number of transactions and last hash",
                _json("the head", _ref("LedgerHead")),
            ),
            "/ledger/export.jsonl": _read(
                "exportLedger",
                "Every ledger transaction, one JSON object a line, in posting order; "
                "verify with `python -m ledger.verify`",
                {
                    "description": "JSON lines, each a LedgerTransaction",
                    "content": {"application/x-ndjson": {"schema": _ref("LedgerTransaction")}},
                },
            ),
            "/ledger/tree-head": _read(
                "getTreeHead",
                "The latest signed head of the Merkle tree over the transactions (RFC "
                "6962: leaf i is line i of the export, its data the transaction's hash); "
                "with tree_size, the head published for that size",
                _json("a signed tree head", _ref("TreeHead")),
                [_query("tree_size", _COUNT, "a size a head was published for")],
                **{
                    "400": _error("tree_size is not a whole number", ["bad_request"]),
                    "404": _error("no head signed yet, or none for that size", ["not_found"]),
                },
            ),
            "/ledger/public-key": _read(
                "getLedgerPublicKey",
                "The Ed25519 key that signs tree heads; key_id is SHA-256 of its raw bytes",
                _json("the public key", _ref("PublicKey")),
            ),
            "/ledger/proof/inclusion": _read(
                "getInclusionProof",
                "The audit path (RFC 6962 §2.1.1) of a transaction in a signed head (the "
                "latest unless tree_size names another)",
                _json("an inclusion proof", _ref("InclusionProof")),
                [
                    {
                        **_query("transaction_id", _COUNT, "a ledger transaction id"),
                        "required": True,
                    },
                    _query("tree_size", _COUNT, "the size of a published head"),
                ],
                **{
                    "400": _error("an argument is missing or not a whole number", ["bad_request"]),
                    "404": _error(
                        "no such transaction or head, or the transaction is newer than the head",
                        ["not_found", "not_yet_included"],
                    ),
                },
            ),
            "/ledger/proof/consistency": _read(
                "getConsistencyProof",
                "The proof (RFC 6962 §2.1.2) that the tree of `first` leaves is a prefix "
                "of the tree of `second`",
                _json("a consistency proof", _ref("ConsistencyProof")),
                [
                    {**_query("first", _COUNT, "the smaller tree size"), "required": True},
                    {**_query("second", _COUNT, "the larger tree size"), "required": True},
                ],
                **{
                    "400": _error("an argument is missing or not a whole number", ["bad_request"]),
                    "422": _error("first is larger than second", ["invalid_range"]),
                    "404": _error("the tree is smaller than second", ["not_found"]),
                },
            ),
            "/me/orders": _mine(
                "listMyOrders",
                "The token owner's own orders, newest first (at most 50)",
                _json("my orders", _ref("MyOrders")),
            ),
            "/me/impact": _mine(
                "getMyImpact",
                "The households the token owner's paid orders reached, from the ledger "
                "(refunds subtracted)",
                _json("my impact", _ref("MyImpact")),
            ),
            "/openapi.json": _read(
                "getOpenApi",
                "This document",
                _json("the OpenAPI document", {"type": "object", "required": ["openapi"]}),
            ),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "personalToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a personal API token the buyer makes (and can revoke) "
                    "on /account/tokens: lx_…",
                }
            },
        },
    }
