"""How a buyer appears on every public page: the one rule, for online and offline buyers.

A buyer chooses one of three displays: ``masked`` (the surname and a star, ``王*``),
``nickname`` (a name they choose), or ``anonymous`` (爱心人士: counted in the totals,
never ranked, and their organisation never shown). Only the resulting label is ever
stored with an order or an offline sale — the buyer's full name never is — and the
boards read it back through the same function, so what is stored and what is shown
cannot drift apart.
"""

from dataclasses import dataclass

ANONYMOUS_LABEL = "爱心人士"
DISPLAYS = ("masked", "nickname", "anonymous")
MAX_LABEL = 40
MAX_ORGANIZATION = 120


@dataclass(frozen=True)
class PublicIdentity:
    display: str  # one of DISPLAYS
    label: str  # what the boards show: 王*, a nickname, or 爱心人士
    organization: str  # "" when anonymous


def public_identity(
    display: str,
    name: str = "",
    nickname: str = "",
    organization: str = "",
    *,
    label: str | None = None,
) -> PublicIdentity:
    """The public face of a buyer who chose ``display``.

    When a record is made, pass the buyer's real ``name`` (only its first character is
    used: ``王*``) or their ``nickname``; store only the result's ``label``. When a
    stored record is shown, pass that ``label`` back: it is shown as stored. A display
    that is not one of :data:`DISPLAYS` counts as anonymous; a label that comes out
    empty (a nickname display with no nickname) is 爱心人士.
    """
    if display not in DISPLAYS or display == "anonymous":
        return PublicIdentity("anonymous", ANONYMOUS_LABEL, "")
    if label is None:
        name, nickname = (name or "").strip(), (nickname or "").strip()
        label = nickname if display == "nickname" else (name[:1] + "*" if name else "")
    label = label.strip()[:MAX_LABEL] or ANONYMOUS_LABEL
    return PublicIdentity(display, label, (organization or "").strip()[:MAX_ORGANIZATION])
