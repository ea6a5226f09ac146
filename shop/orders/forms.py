from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class OrderLookupForm(FlaskForm):
    order_no = StringField(_l("订单号"), validators=[DataRequired(), Length(max=32)])
    phone = StringField(_l("下单手机号"), validators=[DataRequired(), Length(max=20)])
