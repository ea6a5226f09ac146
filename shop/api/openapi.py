"""The OpenAPI 3.1 description of ``/api/v1`` — the contract buyers' apps rely on."""

from shop.db import MAX_ROW_ID
from shop.orders.services import (
    MAX_ADDRESS,
    MAX_LINES_PER_ORDER,
    MAX_NAME,
    MAX_NICKNAME,
    MAX_ORGANIZATION,
    MAX_QUANTITY_PER_LINE,
    MIN_ADDRESS,
)

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
FEN = {"type": "integer", "description": "amount in fen (1/100 yuan)"}

# What shop.orders.services enforces, said so a client (or a fuzzer's conformance check)
# can know it before sending. Text: no C0 control character but tab and line breaks,
# no DEL (check_text); lone surrogates, also refused, JSON Schema cannot express.
_NO_CONTROLS = "[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*"
# Spaces and dashes anywhere, +86 or 0086 before, then 1[3-9] and nine more ASCII digits.
_GAP = "[\\s-]*"
PHONE_PATTERN = (
    f"^{_GAP}(?:\\+{_GAP}8{_GAP}6{_GAP}|0{_GAP}0{_GAP}8{_GAP}6{_GAP})?"
    f"1{_GAP}[3-9](?:{_GAP}[0-9]){{9}}{_GAP}$"
)


def _text(max_length: int, min_length: int = 0, description: str = "") -> dict:
    """A text field: at most ``max_length`` characters; with ``min_length``, required
    not blank (the app trims surrounding spaces before measuring)."""
    schema = {"type": "string", "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
        schema["pattern"] = f"^(?=[\\s\\S]*\\S){_NO_CONTROLS}$"
    else:
        schema["pattern"] = f"^{_NO_CONTROLS}$"
    if description:
        schema["description"] = description
    return schema


def _error_response(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lianxin Market API",
            "version": "1.0.0",
            "description": "Products, orders and public transparency data. Money is integer fen.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/products": {
                "get": {
                    "summary": "Published products",
                    "responses": {
                        "200": {
                            "description": "products on sale",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["products"],
                                        "properties": {
                                            "products": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Product"},
                                            }
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/orders": {
                "post": {
                    "summary": "Place an order and get the Alipay payment URL",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/OrderRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "order placed, stock reserved until expires_at",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/OrderCreated"}
                                }
                            },
                        },
                        "409": _error_response("out_of_stock"),
                        "422": _error_response("invalid input"),
                        "429": _error_response("too many requests"),
                    },
                }
            },
            "/orders/{token}": {
                "get": {
                    "summary": "An order by its private token",
                    "parameters": [
                        {
                            "name": "token",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 64},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the order",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Order"}
                                }
                            },
                        },
                        "404": _error_response("no such order"),
                    },
                }
            },
            "/board": {
                "get": {
                    "summary": "The love board: all-time totals, the period's totals "
                    "(period_totals: orders, units, amount_fen, beneficiary_fen, buyers), top "
                    "buyers and organisations of the period, recent purchases (buyers only as "
                    "they chose to appear). Answers 304 to a matching If-None-Match.",
                    "parameters": [
                        {
                            "name": "period",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "string",
                                "enum": ["today", "month", "all"],
                                "default": "all",
                            },
                            "description": "period of the rankings (Asia/Shanghai days)",
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 100,
                                "default": 10,
                            },
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the board",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": [
                                            "totals",
                                            "top_buyers",
                                            "top_organizations",
                                            "recent",
                                        ],
                                        "properties": {
                                            "totals": {
                                                "type": "object",
                                                "required": [
                                                    "orders",
                                                    "units",
                                                    "amount_fen",
                                                    "beneficiary_fen",
                                                    "households_reached",
                                                    "buyers",
                                                ],
                                                "properties": {
                                                    name: {"type": "integer"}
                                                    for name in (
                                                        "orders",
                                                        "units",
                                                        "amount_fen",
                                                        "beneficiary_fen",
                                                        "households_reached",
                                                        "buyers",
                                                    )
                                                },
                                            },
                                            "top_buyers": {
                                                "type": "array",
                                                "items": {"type": "object"},
                                            },
                                            "top_organizations": {
                                                "type": "array",
                                                "items": {"type": "object"},
                                            },
                                            "recent": {
                                                "type": "array",
                                                "items": {"type": "object"},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "304": {"description": "unchanged since the ETag given"},
                        "422": _error_response("bad period or limit"),
                    },
                }
            },
            "/households": {
                "get": {
                    "summary": "Every household (masked) with its income by channel, in fen",
                    "responses": {
                        "200": {
                            "description": "the results board",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["households"],
                                        "properties": {
                                            "households": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "required": [
                                                        "code",
                                                        "name_masked",
                                                        "village",
                                                        "members",
                                                        "income_fen",
                                                    ],
                                                    "properties": {
                                                        "code": {"type": "string"},
                                                        "name_masked": {"type": "string"},
                                                        "village": {"type": "string"},
                                                        "members": {"type": "integer"},
                                                        "income_fen": {
                                                            "type": "object",
                                                            "properties": {
                                                                c: {"type": "integer"}
                                                                for c in (
                                                                    "sales",
                                                                    "land",
                                                                    "wages",
                                                                    "dividends",
                                                                    "coop",
                                                                    "total",
                                                                )
                                                            },
                                                        },
                                                    },
                                                },
                                            }
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/changes": {
                "get": {
                    "summary": "Approved changes to households, benefit rules and the register "
                    "(four eyes), newest first; cards, names and ID numbers masked",
                    "parameters": [
                        {
                            "name": "household",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 16},
                        },
                        {
                            "name": "before",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "one page of the public change log",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["changes"],
                                        "properties": {
                                            "changes": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Change"},
                                            },
                                            "next": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error_response("before or limit is not a number in range"),
                    },
                }
            },
            "/ledger/head": {
                "get": {
                    "summary": "The hash chain's head: number of transactions and last hash",
                    "responses": {
                        "200": {
                            "description": "the head",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["count", "hash"],
                                        "properties": {
                                            "count": {"type": "integer"},
                                            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/ledger/export.jsonl": {
                "get": {
                    "summary": "Every ledger transaction, one JSON object a line, in posting "
                    "order; verify with `python -m ledger.verify`",
                    "responses": {
                        "200": {
                            "description": "JSON lines",
                            "content": {
                                "application/x-ndjson": {
                                    "schema": {"$ref": "#/components/schemas/LedgerTransaction"}
                                }
                            },
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": ERROR,
                "Change": {
                    "type": "object",
                    "required": [
                        "id",
                        "approved_at",
                        "kind",
                        "title",
                        "household_code",
                        "proposed_by",
                        "approved_by",
                        "before",
                        "after",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "approved_at": {"type": "string", "format": "date-time"},
                        "proposed_at": {"type": "string", "format": "date-time"},
                        "kind": {
                            "type": "string",
                            "description": "household.update, "
                            "household.create, household.import, rule.new, …",
                        },
                        "kind_label": {"type": "string"},
                        "title": {"type": "string"},
                        "household_code": {"type": ["string", "null"]},
                        "proposed_by": {"type": "string", "description": "display name"},
                        "approved_by": {"type": "string", "description": "display name"},
                        "before": {"type": "object", "description": "masked values"},
                        "after": {"type": "object", "description": "masked values"},
                    },
                },
                "Product": {
                    "type": "object",
                    "required": [
                        "id",
                        "slug",
                        "name",
                        "price_fen",
                        "stock",
                        "unit",
                        "beneficiary_fen_per_unit",
                        "image_url",
                        "url",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "slug": {"type": "string"},
                        "name": {"type": "string"},
                        "price_fen": FEN,
                        "stock": {"type": "integer", "minimum": 0},
                        "unit": {"type": "string"},
                        "beneficiary_fen_per_unit": FEN,
                        "image_url": {"type": ["string", "null"]},
                        "url": {"type": "string"},
                    },
                },
                "OrderRequest": {
                    "type": "object",
                    "required": ["items", "buyer", "shipping"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_LINES_PER_ORDER,
                            "items": {
                                "type": "object",
                                "required": ["product_id", "quantity"],
                                "properties": {
                                    "product_id": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": MAX_ROW_ID,
                                    },
                                    "quantity": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": MAX_QUANTITY_PER_LINE,
                                        "description": 'a JSON integer; a string ("2") is '
                                        "refused; the same product's lines add up to at "
                                        f"most {MAX_QUANTITY_PER_LINE}",
                                    },
                                },
                            },
                        },
                        "buyer": {
                            "type": "object",
                            "required": ["name", "phone"],
                            "properties": {
                                "name": _text(MAX_NAME, 1, "recipient"),
                                "phone": {
                                    "type": "string",
                                    "pattern": PHONE_PATTERN,
                                    "description": "mainland mobile, 11 ASCII digits; "
                                    "spaces, dashes and +86 allowed",
                                },
                                "board_name": _text(MAX_NICKNAME, 0, "nickname on the love board"),
                                "organization": _text(MAX_ORGANIZATION),
                                "anonymous": {
                                    "type": "boolean",
                                    "description": "appear as 爱心人士",
                                },
                            },
                        },
                        "shipping": {
                            "type": "object",
                            "required": ["address"],
                            "properties": {
                                "address": _text(
                                    MAX_ADDRESS,
                                    MIN_ADDRESS,
                                    f"{MIN_ADDRESS}–{MAX_ADDRESS} characters after trimming; "
                                    "line breaks allowed",
                                )
                            },
                        },
                        "channel": {"type": "string", "enum": ["pc", "wap"], "default": "pc"},
                    },
                },
                "OrderCreated": {
                    "type": "object",
                    "required": [
                        "order_no",
                        "token",
                        "status",
                        "total_fen",
                        "pay_url",
                        "expires_at",
                    ],
                    "properties": {
                        "order_no": {"type": "string"},
                        "token": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending_payment"]},
                        "total_fen": FEN,
                        "pay_url": {"type": "string"},
                        "expires_at": {"type": "string", "format": "date-time"},
                    },
                },
                "LedgerTransaction": {
                    "type": "object",
                    "required": [
                        "id",
                        "key",
                        "kind",
                        "created_at",
                        "memo",
                        "reverses",
                        "entries",
                        "prev_hash",
                        "hash",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "key": {"type": "string"},
                        "kind": {"type": "string"},
                        "created_at": {"type": "string"},
                        "memo": {"type": "string"},
                        "reverses": {"type": ["integer", "null"]},
                        "entries": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"account": {"type": "string"}, "amount_fen": FEN},
                            },
                        },
                        "prev_hash": {"type": "string"},
                        "hash": {"type": "string"},
                    },
                },
                "Order": {
                    "type": "object",
                    "required": [
                        "order_no",
                        "status",
                        "total_fen",
                        "items",
                        "allocations",
                        "ledger",
                    ],
                    "properties": {
                        "order_no": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": [
                                "pending_payment",
                                "paid",
                                "shipped",
                                "completed",
                                "cancelled",
                                "refunded",
                            ],
                        },
                        "total_fen": FEN,
                        "refunded_fen": FEN,
                        "board_name": {"type": "string"},
                        "items": {"type": "array", "items": {"type": "object"}},
                        "allocations": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "household": {"type": "string", "description": "masked"},
                                    "code": {"type": "string"},
                                    "amount_fen": FEN,
                                },
                            },
                        },
                        "ledger": {
                            "type": ["object", "null"],
                            "properties": {
                                "transaction_id": {"type": "integer"},
                                "hash": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }
