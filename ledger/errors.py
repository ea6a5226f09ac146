"""What the ledger refuses, as exceptions. Every refusal happens before anything is
written, so the caller's unit of work rolls back with nothing to undo."""


class LedgerError(ValueError):
    """A posting was refused; nothing was written."""


class Unbalanced(LedgerError):
    """The entries do not sum to zero, or there are fewer than two."""


class IdempotencyConflict(LedgerError):
    """The key was already used for a transaction with different content."""


class Overdrawn(LedgerError):
    """The posting would leave a household owed less than nothing."""


class AppendOnlyViolation(RuntimeError):
    """Something tried to update or delete a posted row (a bug, never user input)."""
