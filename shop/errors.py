"""The one shape of an error a person can fix, and how it reaches them.

Services raise a :class:`UserError` (or a domain subclass: ``OrderError``,
``ConsoleError``, ``OfflineError``, ``HouseholdError``, ``RuleInputError``,
``AccountError``) with a message already in the user's language. Routes never build
the message themselves: a page puts it on its form with :func:`show_on_form`; the
JSON API answers it with :func:`error_response` (``{"error": {"code", "message",
"field"?, …details}}`` and the error's ``status``).
"""

from flask import flash, jsonify


class UserError(Exception):
    """A problem the person can fix.

    ``message`` is for people (already translated); ``field`` names the input it is
    about (``None``: the whole form); ``code`` is stable for machines (the API's
    ``error.code``); ``status`` is the HTTP status the API answers with; ``details``
    are extra machine-readable facts (``{"product_id": 3}``). ``errors`` lists every
    problem found when a whole form was checked, this one first.
    """

    status = 422
    code = "invalid"

    def __init__(
        self,
        message: str,
        field: str | None = None,
        code: str | None = None,
        details: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.details = details or {}
        self.errors: list[UserError] = [self]


def show_on_form(form, error: UserError) -> None:
    """Put every problem of ``error`` on the form field it names; flash the others."""
    for problem in error.errors:
        target = getattr(form, problem.field, None) if problem.field else None
        if target is not None and hasattr(target, "errors"):
            target.errors = [*target.errors, problem.message]
        else:
            flash(problem.message, "error")


def error_response(status: int, code: str, message: str, **extra):
    """The API's error answer: ``({"error": {"code", "message", **extra}}, status)``."""
    return jsonify({"error": {"code": code, "message": message, **extra}}), status


def user_error_response(error: UserError):
    """A :class:`UserError` as the API answers it (``field`` and ``details`` included)."""
    extra = {"field": error.field} if error.field else {}
    extra.update(error.details)
    return error_response(error.status, error.code, error.message, **extra)
