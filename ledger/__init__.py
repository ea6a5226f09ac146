"""The money core of Lianxin Market: its public API.

Plain Python and SQLAlchemy; this package never imports Flask, so it can be tested and
audited on its own. All amounts are integers in fen (分). The shop (``shop/``) uses the
ledger only through the names below — ``from ledger import post_sale, household_account``
— never a submodule or a private name (``tests/unit/test_architecture.py`` checks it).

Names are loaded on first use (PEP 562), so ``python -m ledger.verify`` — the auditor's
standalone verifier — still runs on a bare Python without SQLAlchemy installed.

Inside the package, imports run one way: ``base``, ``errors``, ``kinds``, ``canonical``
and ``allocation`` depend on nothing; ``models`` (which arms ``guard``) on ``base``;
``accounts`` and ``chain`` on ``models``; ``append`` on those; ``posting`` on
``append``; ``rules``, ``sales``, ``income``, ``payouts``, ``statements``, ``export``
and ``audit`` on ``posting`` and below; ``verify`` only on ``canonical``. The Merkle
tree: ``merkle`` and ``tree_head`` (signed heads; ``cryptography``) depend on nothing,
``tree`` (the stored tree, which ``append`` writes) on ``models``, ``merkle`` and
``tree_head``; ``witness`` (a standalone command, like ``verify``) on ``merkle`` and
``tree_head`` only.
"""

from importlib import import_module

_EXPORTS = {
    "ledger.base": ("AppendOnly", "Base", "NAMING_CONVENTION", "UTCDateTime", "utcnow"),
    "ledger.errors": (
        "AppendOnlyViolation",
        "IdempotencyConflict",
        "LedgerError",
        "Overdrawn",
        "Unbalanced",
    ),
    "ledger.kinds": (
        "CHANNELS",
        "CHANNEL_OF_KIND",
        "INCOME_KINDS",
        "INCOME_REVERSAL_KIND",
        "REFUND_KIND",
        "SALE_KINDS",
    ),
    "ledger.models": (
        "ACCOUNT_KINDS",
        "Account",
        "Entry",
        "LedgerHead",
        "SaleLineRecord",
        "Transaction",
    ),
    "ledger.accounts": (
        "CLEARING",
        "FEES",
        "HOUSEHOLD_PREFIX",
        "IN_FLIGHT",
        "PAID_OUT",
        "AccountRef",
        "account_refs",
        "ensure_account",
        "ensure_accounts",
        "household_account",
        "household_code",
    ),
    "ledger.chain": ("APPENDED", "lock_head"),
    "ledger.append": ("NewTransaction", "Posted"),
    "ledger.posting": ("find", "post", "post_many", "reverse"),
    "ledger.allocation": ("split_by_weight", "split_pro_rata"),
    "ledger.rules": (
        "SHARE_KINDS",
        "SPLITS",
        "WEIGHT_BASES",
        "BenefitRule",
        "RuleError",
        "RuleHousehold",
        "create_rule",
        "latest_rule",
        "rule_in_force",
    ),
    "ledger.sales": (
        "SaleLine",
        "SaleRequest",
        "SaleResult",
        "fee_for",
        "post_refund",
        "post_sale",
        "post_sales",
        "sale_allocations",
        "totals_by_product",
        "totals_by_rule",
    ),
    "ledger.income": (
        "PAYER_KINDS",
        "coop_fen",
        "dividend_parts",
        "income_by_household",
        "income_key",
        "income_totals",
        "land_rent_fen",
        "payer_account_kind",
        "post_income",
        "reverse_income",
        "wages_fen",
    ),
    "ledger.payouts": (
        "PAYOUT_STATUSES",
        "Payout",
        "PayoutBusy",
        "PayoutRef",
        "households_due",
        "in_flight",
        "latest_refusals",
        "owed_fen",
        "settle_payout",
        "start_payout",
    ),
    "ledger.statements": (
        "Statement",
        "StatementLine",
        "StatementPage",
        "TrialBalanceRow",
        "account_statement",
        "latest_lines",
        "totals_by_kind",
        "trial_balance",
    ),
    "ledger.export": ("head", "iter_export", "iter_export_lines", "transaction_dict"),
    "ledger.audit": ("AuditResult", "verify_database"),
    "ledger.verify": ("Report", "verify_lines", "verify_records"),
    "ledger.merkle": (
        "EMPTY_ROOT",
        "ProofError",
        "leaf_hash",
        "verify_consistency",
        "verify_inclusion",
    ),
    "ledger.tree_head": (
        "head_message",
        "key_id",
        "load_or_create_private_key",
        "public_key_raw",
        "sign_head",
        "utc_timestamp",
        "verify_head",
    ),
    "ledger.tree": (
        "TreeHead",
        "TreeNode",
        "check_tree",
        "consistency_path",
        "head_at",
        "inclusion_path",
        "latest_head",
        "leaf_count",
        "publish_head",
        "tree_root",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger' has no public name {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
