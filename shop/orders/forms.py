from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class OrderLookupForm(FlaskForm):
    order_no = StringField(_l("订单号"), validators=[DataRequired(), Length(max=32)])
    phone = StringField(_l("下单手机号"), validators=[DataRequired(), Length(max=20)])


class BuyerDetailsForm(FlaskForm):
    """Who receives an order and how they appear on the love board: checkout's form,
    and the buyer's saved details on ``/account/profile``."""

    name = StringField(_l("收货人"), validators=[DataRequired(), Length(max=40)])
    phone = StringField(_l("手机号码"), validators=[DataRequired(), Length(max=20)])
    address = TextAreaField(_l("收货地址"), validators=[DataRequired(), Length(max=200)])
    board_display = RadioField(
        _l("在爱心榜上显示为"),
        choices=[
            ("masked", _l("姓氏加星号（如 王*）")),
            ("nickname", _l("昵称")),
            ("anonymous", _l("爱心人士（匿名）")),
        ],
        default="masked",
    )
    nickname = StringField(_l("昵称"), validators=[Optional(), Length(max=20)])
    email = EmailField(_l("电子邮箱（可不填）"), validators=[Optional(), Length(max=254)])
    organization = StringField(
        _l("单位（爱心企业，可不填）"), validators=[Optional(), Length(max=60)]
    )
