from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, RadioField, StringField
from wtforms.validators import DataRequired, Length, Optional


class OrganisationForm(FlaskForm):
    name = StringField(_l("单位名称"), validators=[DataRequired(), Length(max=60)])
    credit_code = StringField(_l("统一社会信用代码"), validators=[DataRequired(), Length(max=30)])
    contact_name = StringField(_l("联系人"), validators=[DataRequired(), Length(max=40)])
    contact_phone = StringField(_l("联系电话（手机）"), validators=[DataRequired(), Length(max=20)])
    email = EmailField(_l("电子邮箱（可不填）"), validators=[Optional(), Length(max=254)])


class BulkOrderForm(FlaskForm):
    """A recipients CSV and who the shop deals with about the order."""

    recipients = FileField(_l("收件人清单（CSV）"), validators=[FileRequired()])
    contact_name = StringField(_l("经办人"), validators=[DataRequired(), Length(max=40)])
    contact_phone = StringField(_l("经办人手机"), validators=[DataRequired(), Length(max=20)])
    email = EmailField(_l("电子邮箱（可不填）"), validators=[Optional(), Length(max=254)])
    board_display = RadioField(
        _l("在爱心榜上显示为"),
        choices=[("masked", _l("单位名称")), ("anonymous", _l("爱心人士（匿名）"))],
        default="masked",
    )
