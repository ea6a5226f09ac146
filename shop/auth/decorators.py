"""The one place roles are checked."""

from functools import wraps

from flask import abort
from flask_login import current_user

from shop.extensions import login_manager


def role_required(role: str):
    """Allow the view to users whose role is ``role`` or higher (buyer < staff < admin).

    Anonymous users are sent to the login page; logged-in users without the role get 403.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_role(role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
