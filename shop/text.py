"""The one rule for what text people may type into the shop.

No C0 control character except tab, line feed and carriage return; no DEL; no lone
UTF-16 surrogate (a JSON ``"\\ud800"`` escape). NUL above all: PostgreSQL's text type
refuses it (a 500) and SQLite would store it. Text that breaks the rule is refused with
a message, never cleaned: silently changing an address or a reason is worse.
"""

import re

FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def has_forbidden_characters(value: str) -> bool:
    return FORBIDDEN_TEXT.search(value or "") is not None
