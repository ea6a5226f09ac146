from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class DecisionForm(FlaskForm):
    """A bare form for the approve button: carries only the CSRF token."""


class RejectForm(FlaskForm):
    reason = StringField(_l("驳回理由"), validators=[DataRequired(), Length(max=300)])
