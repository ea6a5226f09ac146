"""JSON Schemas of what ``/api/v1`` accepts and answers (the OpenAPI document's
``components.schemas``; the paths are in :mod:`shop.api.openapi`).

Invariant: a request body is valid here exactly when the API would take it as far as
its form goes — what is refused for its shape (422) is invalid here, and what is valid
here is refused only for the state of the shop (a product not on sale, stock, the
unpaid-order limits). Schemathesis checks both directions on every run
(``tests/functional/test_api_fuzz.py``), so a rule changed in
``shop/orders/services.py`` or ``shop/api/services.py`` must be changed here too.

Text fields are measured as the app measures them: after trimming the characters
Python's ``str.strip()`` removes, so the length rules are written into the pattern
(``maxLength`` would count the padding the app ignores). Patterns use ``\\uXXXX``
escapes only, never ``\\s``: regex engines disagree on what ``\\s`` covers.

The document is OpenAPI 3.0 (``nullable``, not ``type: [..., "null"]``) because its
JSON Schema dialect counts only ``2`` as an integer, as the API does: ``2.0`` and
``"2"`` are refused. OpenAPI 3.1's JSON Schema would count ``2.0`` as an integer too.
"""

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

FEN = {"type": "integer", "description": "amount in fen (1/100 yuan)"}
HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
# What shop.orders.services.check_text refuses anywhere in a text: C0 controls but tab
# and line breaks, and DEL. (Lone surrogates, also refused, JSON Schema cannot express.)
_FORBIDDEN = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f"
# Every character str.strip() removes (str.isspace(); all lie below U+3001).
_SPACE_CHARS = [c for c in map(chr, range(0x3001)) if c.isspace()]
_ALL_SPACES = "".join(f"\\u{ord(c):04x}" for c in _SPACE_CHARS)
_ALLOWED_SPACES = "".join(
    f"\\u{ord(c):04x}" for c in _SPACE_CHARS if c in "\t\n\r" or ord(c) > 0x1F
)
_PAD = f"[{_ALLOWED_SPACES}]*"  # what trimming removes, and may be sent
_EDGE = f"[^{_FORBIDDEN}{_ALL_SPACES}]"  # a first or last character that stays
_ANY = f"[^{_FORBIDDEN}]"  # any character a text may hold


def trimmed_text_pattern(min_length: int, max_length: int) -> str:
    """A pattern for text of ``min_length``..``max_length`` characters once trimmed,
    with no forbidden character anywhere."""
    inner = f"{_ANY}{{{max(min_length - 2, 0)},{max_length - 2}}}"
    content = f"{_EDGE}(?:{inner}{_EDGE})" + ("?" if min_length <= 1 else "")
    if min_length == 0:
        content = f"(?:{content})?"
    return f"^{_PAD}{content}{_PAD}$"


def _text(min_length: int, max_length: int, description: str, nullable: bool = False) -> dict:
    rule = f"{min_length}–{max_length}" if min_length else f"at most {max_length}"
    return {
        "type": "string",
        **({"nullable": True} if nullable else {}),
        "pattern": trimmed_text_pattern(min_length, max_length),
        "description": f"{description}; {rule} characters after trimming surrounding "
        "spaces; no control characters but tab and line breaks"
        + ("; null counts as empty" if nullable else ""),
    }


# Spaces and dashes anywhere, +86 or 0086 before, then 1[3-9] and nine more ASCII
# digits (shop.orders.services.normalise_phone).
_GAP = f"[{_ALLOWED_SPACES}-]*"
PHONE_PATTERN = (
    f"^{_GAP}(?:\\+{_GAP}8{_GAP}6{_GAP}|0{_GAP}0{_GAP}8{_GAP}6{_GAP})?"
    f"1{_GAP}[3-9](?:{_GAP}[0-9]){{9}}{_GAP}$"
)
# Werkzeug's names for the statuses it raises, as the error handler turns them into codes.
ERROR_CODES = {
    400: ["bad_request"],
    404: ["not_found"],
    405: ["method_not_allowed"],
    413: ["request_entity_too_large"],
    429: ["too_many_requests"],
}


def error_schema(codes: list[str] | None = None) -> dict:
    """``{"error": {"code", "message", "field"?, …}}``; ``codes``: the codes possible."""
    code = {"type": "string"}
    if codes:
        code["enum"] = codes
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": code,
                    "message": {"type": "string", "description": "in the request's language"},
                    "field": {"type": "string", "description": "the input it is about"},
                },
            }
        },
    }


def _object(properties: dict, required: list[str] | None = None, **extra) -> dict:
    schema = {"type": "object", "required": list(properties) if required is None else required}
    schema["properties"] = properties
    schema.update(extra)
    return schema


def _integers(*names: str, minimum: int | None = 0) -> dict:
    field = {"type": "integer"} if minimum is None else {"type": "integer", "minimum": minimum}
    return _object({name: dict(field) for name in names})


_PERIOD_TOTALS = ("orders", "units", "amount_fen", "beneficiary_fen", "buyers")
_INCOME = ("sales", "land", "wages", "dividends", "coop", "total")
ORDER_STATUSES = ["pending_payment", "paid", "shipped", "completed", "cancelled", "refunded"]
_OPTIONAL_TIME = {"type": "string", "nullable": True, "format": "date-time"}

SCHEMAS = {
    "Error": error_schema(),
    "Product": _object(
        {
            "id": {"type": "integer", "minimum": 1},
            "slug": {"type": "string"},
            "name": {"type": "string"},
            "price_fen": FEN,
            "stock": {"type": "integer", "minimum": 0},
            "unit": {"type": "string"},
            "beneficiary_fen_per_unit": FEN,
            "image_url": {"type": "string", "nullable": True},
            "url": {"type": "string"},
        }
    ),
    "ProductList": _object(
        {"products": {"type": "array", "items": {"$ref": "#/components/schemas/Product"}}}
    ),
    "OrderRequest": _object(
        {
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_LINES_PER_ORDER,
                "items": _object(
                    {
                        "product_id": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
                        "quantity": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_QUANTITY_PER_LINE,
                            "description": 'a JSON integer; a string ("2") is refused; the '
                            "same product's lines add up to at most "
                            f"{MAX_QUANTITY_PER_LINE} (else 422 quantity_limit)",
                        },
                    }
                ),
            },
            "buyer": _object(
                {
                    "name": _text(1, MAX_NAME, "recipient"),
                    "phone": {
                        "type": "string",
                        "pattern": PHONE_PATTERN,
                        "description": "mainland mobile, 11 ASCII digits; spaces, dashes "
                        "and +86 allowed",
                    },
                    "board_name": _text(0, MAX_NICKNAME, "nickname on the love board", True),
                    "organization": _text(0, MAX_ORGANIZATION, "organisation", True),
                    "anonymous": {"type": "boolean", "description": "appear as 爱心人士"},
                },
                required=["name", "phone"],
            ),
            "shipping": _object(
                {"address": _text(MIN_ADDRESS, MAX_ADDRESS, "line breaks allowed")}
            ),
            "channel": {"type": "string", "enum": ["pc", "wap"], "default": "pc"},
        },
        required=["items", "buyer", "shipping"],
    ),
    "OrderCreated": _object(
        {
            "order_no": {"type": "string", "pattern": "^LX[0-9]{22}$"},
            "token": {"type": "string", "pattern": "^[A-Za-z0-9_-]{32}$"},
            "status": {"type": "string", "enum": ["pending_payment"]},
            "total_fen": FEN,
            "pay_url": {"type": "string", "description": "the Alipay cashier"},
            "expires_at": {"type": "string", "format": "date-time"},
        }
    ),
    "Order": _object(
        {
            "order_no": {"type": "string"},
            "status": {"type": "string", "enum": ORDER_STATUSES},
            "total_fen": FEN,
            "refunded_fen": FEN,
            "board_name": {"type": "string", "description": "as the buyer appears in public"},
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "product_id": {"type": "integer", "nullable": True},
                        "name": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1},
                        "unit": {"type": "string"},
                        "unit_price_fen": FEN,
                        "line_total_fen": FEN,
                        "beneficiary_fen_per_unit": FEN,
                    }
                ),
            },
            "allocations": {
                "type": "array",
                "items": _object(
                    {
                        "household": {"type": "string", "description": "masked name"},
                        "code": {"type": "string"},
                        "amount_fen": FEN,
                    }
                ),
            },
            "ledger": {
                "type": "object",
                "nullable": True,
                "description": "the sale's posting in the hash chain; null until paid",
                "required": ["transaction_id", "hash"],
                "properties": {"transaction_id": {"type": "integer"}, "hash": HASH},
            },
        }
    ),
    "Ranking": _object(
        {
            "rank": {"type": "integer", "minimum": 1},
            "name": {"type": "string"},
            **{name: {"type": "integer"} for name in _PERIOD_TOTALS if name != "buyers"},
        }
    ),
    "Purchase": _object(
        {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "channel": {"type": "string"},
            "buyer": {"type": "string", "description": "as the buyer chose to appear"},
            "anonymous": {"type": "boolean"},
            "organization": {"type": "string"},
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "product": {"type": "string"},
                        "slug": {"type": "string"},
                        "quantity": {"type": "integer"},
                        "unit": {"type": "string"},
                    }
                ),
            },
            "units": {"type": "integer"},
            "amount_fen": FEN,
            "beneficiary_fen": FEN,
            "refunded_fen": FEN,
            "households": {
                "type": "array",
                "items": _object(
                    {
                        "code": {"type": "string"},
                        "name_masked": {"type": "string"},
                        "amount_fen": FEN,
                    }
                ),
            },
        }
    ),
    "Board": _object(
        {
            "totals": _integers(*_PERIOD_TOTALS, "households_reached"),
            "period": {"type": "string", "enum": ["today", "month", "all"]},
            "period_totals": _integers(*_PERIOD_TOTALS),
            "top_buyers": {"type": "array", "items": {"$ref": "#/components/schemas/Ranking"}},
            "top_organizations": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Ranking"},
            },
            "recent": {"type": "array", "items": {"$ref": "#/components/schemas/Purchase"}},
        }
    ),
    "HouseholdList": _object(
        {
            "households": {
                "type": "array",
                "items": _object(
                    {
                        "code": {"type": "string"},
                        "name_masked": {"type": "string"},
                        "village": {"type": "string"},
                        "members": {"type": "integer"},
                        "income_fen": _integers(*_INCOME, minimum=None),
                    }
                ),
            }
        }
    ),
    "Change": _object(
        {
            "id": {"type": "integer"},
            "approved_at": _OPTIONAL_TIME,
            "proposed_at": {"type": "string", "format": "date-time"},
            "kind": {
                "type": "string",
                "description": "household.update, household.create, household.import, rule.new, …",
            },
            "kind_label": {"type": "string"},
            "title": {"type": "string"},
            "household_code": {"type": "string", "nullable": True},
            "proposed_by": {"type": "string", "description": "display name"},
            "approved_by": {"type": "string", "nullable": True, "description": "display name"},
            "before": {"type": "object", "description": "masked values"},
            "after": {"type": "object", "description": "masked values"},
        }
    ),
    "ChangePage": _object(
        {
            "changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}},
            "next": {"type": "string", "description": "the next page's URL (absent: last)"},
        },
        required=["changes"],
    ),
    "LedgerHead": _object({"count": {"type": "integer", "minimum": 0}, "hash": HASH}),
    # The Merkle tree over the transactions (RFC 6962; shop/transparency, ledger/tree.py).
    "TreeHead": _object(
        {
            "tree_size": {"type": "integer", "minimum": 0},
            "root_hash": HASH,
            "timestamp": {"type": "string", "description": "UTC, ISO 8601, as signed"},
            "key_id": HASH,
            "signature": {
                "type": "string",
                "description": "base64 Ed25519 signature over the JSON object "
                '{"root_hash","timestamp","tree_size"}, sorted keys, no spaces',
            },
        }
    ),
    "PublicKey": _object(
        {
            "algorithm": {"type": "string", "enum": ["Ed25519"]},
            "public_key": {"type": "string", "description": "base64 of the raw 32 bytes"},
            "key_id": HASH,
        }
    ),
    "InclusionProof": _object(
        {
            "transaction_id": {"type": "integer", "minimum": 1},
            "leaf_index": {"type": "integer", "minimum": 0},
            "tree_size": {"type": "integer", "minimum": 1},
            "leaf_hash": HASH,
            "audit_path": {"type": "array", "items": HASH},
            "root_hash": HASH,
        }
    ),
    "ConsistencyProof": _object(
        {
            "first": {"type": "integer", "minimum": 0},
            "second": {"type": "integer", "minimum": 0},
            "proof": {"type": "array", "items": HASH},
        }
    ),
    "LedgerTransaction": _object(
        {
            "id": {"type": "integer"},
            "key": {"type": "string"},
            "kind": {"type": "string"},
            "created_at": {"type": "string"},
            "memo": {"type": "string"},
            "reverses": {"type": "integer", "nullable": True},
            "entries": {
                "type": "array",
                "minItems": 2,
                "items": _object({"account": {"type": "string"}, "amount_fen": FEN}),
            },
            "prev_hash": HASH,
            "hash": HASH,
        }
    ),
    "MyOrders": _object(
        {
            "orders": {
                "type": "array",
                "items": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Order"},
                        _object(
                            {
                                "token": {"type": "string"},
                                "created_at": {"type": "string", "format": "date-time"},
                                "carrier": {"type": "string"},
                                "tracking_no": {"type": "string"},
                            }
                        ),
                    ]
                },
            }
        }
    ),
    "MyImpact": _object(
        {
            "paid_orders": {"type": "integer", "minimum": 0},
            "units": {"type": "integer", "minimum": 0},
            "to_households_fen": FEN,
            "households": {
                "type": "array",
                "items": _object(
                    {
                        "code": {"type": "string"},
                        "name_masked": {"type": "string"},
                        "village": {"type": "string"},
                        "amount_fen": FEN,
                    }
                ),
            },
        }
    ),
}
