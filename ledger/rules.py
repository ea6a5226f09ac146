"""Benefit rules: how much of each unit sold goes to households, and to which.

A rule belongs to one product (``product_id``) or, with ``product_id`` NULL, is the
programme's default for products without their own. Rules are versioned and never
edited: a change is a new version with a later ``effective_from``, so a sale is always
allocated by the rule in force when it was paid and history is never rewritten.

Share: ``fixed`` — ``share_fen_per_unit`` fen for every unit (never more than the
line's price); ``percent`` — ``share_basis_points`` / 10 000 of the line total,
rounded down (the odd fen stays with the enterprise).

Split among the rule's linked households (``RuleHousehold``, by household code):
- ``weighted``: the share is split by weight (land in 0.01 mu, shares, members, or 1
  each) with the largest-remainder method; ties go to the earlier code.
- ``matched``: unit by unit, each unit's share goes whole to the linked household that
  has received least so far (ties: earlier code), so one buyer's unit is linked to one
  household and the programme's money spreads evenly over time.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, or_, select
from sqlalchemy.orm import (
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
)

from ledger.allocation import split_by_weight
from ledger.base import Base, UTCDateTime, utcnow

SHARE_KINDS = ("fixed", "percent")
SPLITS = ("weighted", "matched")
WEIGHT_BASES = ("land", "members", "shares", "equal")


class BenefitRule(Base):
    __tablename__ = "ledger_benefit_rule"
    __table_args__ = (
        UniqueConstraint("product_id", "version", name="uq_ledger_benefit_rule_product_version"),
        CheckConstraint("share_kind IN ('fixed', 'percent')", name="share_kind"),
        CheckConstraint("split IN ('weighted', 'matched')", name="split"),
        CheckConstraint("share_fen_per_unit >= 0", name="share_fen_nonnegative"),
        CheckConstraint(
            "share_basis_points >= 0 AND share_basis_points <= 10000", name="basis_points_range"
        ),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The shop's product id (no foreign key: the ledger stands alone); NULL = default rule.
    product_id: Mapped[int | None] = mapped_column(index=True)
    version: Mapped[int]
    share_kind: Mapped[str] = mapped_column(String(8))
    share_fen_per_unit: Mapped[int] = mapped_column(default=0)
    share_basis_points: Mapped[int] = mapped_column(default=0)
    split: Mapped[str] = mapped_column(String(10))
    weight_basis: Mapped[str] = mapped_column(String(10), default="equal")
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    households: Mapped[list["RuleHousehold"]] = relationship(
        order_by="RuleHousehold.household_code", back_populates="rule"
    )

    @property
    def label(self) -> str:
        return f"{'P' + str(self.product_id) if self.product_id else 'default'}/v{self.version}"

    def share_for(self, unit_price_fen: int, quantity: int) -> int:
        """The households' share of a line, in fen (never more than the line total)."""
        return _share(self, unit_price_fen, quantity)

    def weights(self) -> dict[str, int]:
        return {link.household_code: link.weight for link in self.households}


class RuleHousehold(Base):
    """A household linked to a rule, with its weight (integer; e.g. land in 0.01 mu)."""

    __tablename__ = "ledger_rule_household"
    __table_args__ = (
        UniqueConstraint("rule_id", "household_code", name="uq_ledger_rule_household_rule_code"),
        CheckConstraint("weight > 0", name="weight_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("ledger_benefit_rule.id"), index=True)
    household_code: Mapped[str] = mapped_column(String(16))
    weight: Mapped[int] = mapped_column(default=1)

    rule: Mapped[BenefitRule] = relationship(back_populates="households")


class RuleError(ValueError):
    """A rule that cannot be created as asked; nothing was written."""


def create_rule(
    session: Session,
    product_id: int | None,
    share_kind: str,
    split: str,
    households: Mapping[str, int],
    share_fen_per_unit: int = 0,
    share_basis_points: int = 0,
    weight_basis: str = "equal",
    effective_from: datetime | None = None,
    note: str = "",
) -> BenefitRule:
    """Add the next version of a product's (or the default) rule; flush, no commit.

    ``households`` maps household code → positive integer weight (use 1 for
    ``matched`` or equal splits). Raises :class:`RuleError`.
    """
    if share_kind not in SHARE_KINDS:
        raise RuleError(f"share_kind must be one of {SHARE_KINDS}")
    if split not in SPLITS:
        raise RuleError(f"split must be one of {SPLITS}")
    if weight_basis not in WEIGHT_BASES:
        raise RuleError(f"weight_basis must be one of {WEIGHT_BASES}")
    if share_kind == "fixed" and (
        not isinstance(share_fen_per_unit, int) or share_fen_per_unit < 0
    ):
        raise RuleError("share_fen_per_unit must be a non-negative integer")
    if share_kind == "percent" and not 0 <= share_basis_points <= 10_000:
        raise RuleError("share_basis_points must be between 0 and 10000")
    if not households:
        raise RuleError("a rule needs at least one household")
    for code, weight in households.items():
        if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
            raise RuleError(f"weight for {code} must be a positive integer")
    moment = effective_from or utcnow()
    latest = latest_rule(session, product_id)
    if latest is not None and moment < latest.effective_from:
        raise RuleError("a new version cannot take effect before the current one")
    rule = BenefitRule(
        product_id=product_id,
        version=(latest.version + 1) if latest else 1,
        share_kind=share_kind,
        share_fen_per_unit=share_fen_per_unit if share_kind == "fixed" else 0,
        share_basis_points=share_basis_points if share_kind == "percent" else 0,
        split=split,
        weight_basis=weight_basis,
        effective_from=moment,
        note=note[:200],
    )
    session.add(rule)
    session.flush()
    for code in sorted(households):
        session.add(RuleHousehold(rule_id=rule.id, household_code=code, weight=households[code]))
    session.flush()
    session.refresh(rule)
    return rule


def latest_rule(session: Session, product_id: int | None) -> BenefitRule | None:
    owner = (
        BenefitRule.product_id.is_(None)
        if product_id is None
        else BenefitRule.product_id == product_id
    )
    return session.scalar(select(BenefitRule).where(owner).order_by(BenefitRule.version.desc()))


def rule_in_force(session: Session, product_id: int, at: datetime) -> BenefitRule | None:
    """The product's rule in force at ``at``, else the default rule then, else None."""
    for owner in (BenefitRule.product_id == product_id, BenefitRule.product_id.is_(None)):
        # Its households come in the same query: every sale needs them.
        rule = (
            session.scalars(
                select(BenefitRule)
                .options(joinedload(BenefitRule.households))
                .where(owner, BenefitRule.effective_from <= at)
                .order_by(BenefitRule.version.desc())
                .limit(1)
            )
            .unique()
            .first()
        )
        if rule is not None:
            return rule
    return None


@dataclass(frozen=True)
class RuleTerms:
    """A rule version as plain values: what allocating a sale needs of it."""

    id: int
    product_id: int | None
    version: int
    share_kind: str
    share_fen_per_unit: int
    share_basis_points: int
    split: str
    effective_from: datetime
    household_weights: tuple[tuple[str, int], ...]  # (code, weight), by code

    def share_for(self, unit_price_fen: int, quantity: int) -> int:
        """The households' share of a line, in fen (never more than the line total)."""
        return _share(self, unit_price_fen, quantity)

    def weights(self) -> dict[str, int]:
        return dict(self.household_weights)


def _share(rule: "BenefitRule | RuleTerms", unit_price_fen: int, quantity: int) -> int:
    line_total = unit_price_fen * quantity
    if rule.share_kind == "fixed":
        return min(rule.share_fen_per_unit * quantity, line_total)
    return line_total * rule.share_basis_points // 10_000


_RULE = BenefitRule.__table__
_LINK = RuleHousehold.__table__


class RuleBook:
    """Every version of some products' rules (and of the default rule) with their
    households, read in one query of plain rows, to answer :func:`rule_in_force` for
    many sales. Same answers as :func:`rule_in_force` for the products it was built for.
    """

    def __init__(self, session: Session, product_ids: Iterable[int]):
        wanted = sorted(set(product_ids))
        rows = session.execute(
            select(
                _RULE.c.id,
                _RULE.c.product_id,
                _RULE.c.version,
                _RULE.c.share_kind,
                _RULE.c.share_fen_per_unit,
                _RULE.c.share_basis_points,
                _RULE.c.split,
                _RULE.c.effective_from,
                _LINK.c.household_code,
                _LINK.c.weight,
            )
            .outerjoin(_LINK, _LINK.c.rule_id == _RULE.c.id)
            .where(or_(_RULE.c.product_id.in_(wanted), _RULE.c.product_id.is_(None)))
            .order_by(_RULE.c.version.desc(), _LINK.c.household_code)
        ).all()
        weights: dict[int, list[tuple[str, int]]] = defaultdict(list)
        heads = {}
        for row in rows:
            heads.setdefault(row.id, row)
            if row.household_code is not None:
                weights[row.id].append((row.household_code, row.weight))
        # Newest version first, per owner (a product id, or None for the default).
        self._versions: dict[int | None, list[RuleTerms]] = defaultdict(list)
        for rule_id, row in heads.items():
            self._versions[row.product_id].append(
                RuleTerms(
                    rule_id,
                    row.product_id,
                    row.version,
                    row.share_kind,
                    row.share_fen_per_unit,
                    row.share_basis_points,
                    row.split,
                    row.effective_from,
                    tuple(weights[rule_id]),
                )
            )

    def in_force(self, product_id: int, at: datetime) -> RuleTerms | None:
        """The product's rule in force at ``at``, else the default rule then, else None."""
        for owner in (product_id, None):
            for rule in self._versions.get(owner, ()):
                if rule.effective_from <= at:
                    return rule
        return None


@dataclass(frozen=True)
class LineAllocation:
    """How one sold line's household share was split: ``parts`` maps household code →
    fen (zero parts omitted); ``share_fen`` = sum of parts."""

    product_id: int
    rule_id: int | None
    share_fen: int
    parts: dict[str, int]


def allocate_line(
    rule: "BenefitRule | RuleTerms",
    product_id: int,
    unit_price_fen: int,
    quantity: int,
    received_so_far: Mapping[str, int],
) -> LineAllocation:
    """Split one line's share by ``rule``.

    ``received_so_far`` (household code → fen received from sales before this line) is
    used by ``matched`` rules and not changed; the caller adds this line's parts before
    allocating the next line.
    """
    share = rule.share_for(unit_price_fen, quantity)
    weights = rule.weights()
    if share == 0:
        return LineAllocation(product_id, rule.id, 0, {})
    if rule.split == "weighted":
        parts = split_by_weight(share, weights)
    else:
        parts = dict.fromkeys(weights, 0)
        received = {code: received_so_far.get(code, 0) for code in weights}
        unit_shares = split_by_weight(share, dict.fromkeys(range(quantity), 1))
        for unit in range(quantity):
            # Least received first; equal amounts go to the earlier code.
            code = min(sorted(weights), key=lambda c: received[c])
            parts[code] += unit_shares[unit]
            received[code] += unit_shares[unit]
    return LineAllocation(
        product_id, rule.id, share, {code: fen for code, fen in parts.items() if fen}
    )
