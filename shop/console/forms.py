from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional


class ProductForm(FlaskForm):
    name = StringField(_l("商品名称"), validators=[DataRequired(), Length(max=120)])
    subtitle = StringField(_l("一句话介绍"), validators=[Optional(), Length(max=200)])
    slug = StringField(
        _l("网址名（小写字母、数字、连字符；可不填）"), validators=[Optional(), Length(max=80)]
    )
    category_id = SelectField(_l("分类"), coerce=int, validators=[Optional()])
    price = StringField(_l("售价（元）"), validators=[DataRequired(), Length(max=20)])
    unit = StringField(_l("单位"), validators=[DataRequired(), Length(max=16)], default="瓶")
    stock = IntegerField(
        _l("库存"), validators=[InputRequired(), NumberRange(min=0, max=1_000_000)], default=0
    )
    beneficiary = StringField(
        _l("每单位直达农户（元）"), validators=[DataRequired(), Length(max=20)], default="0"
    )
    origin = StringField(_l("产地"), validators=[Optional(), Length(max=120)])
    producer = StringField(_l("生产者"), validators=[Optional(), Length(max=120)])
    story = TextAreaField(_l("商品故事"), validators=[Optional(), Length(max=5000)])
    featured = BooleanField(_l("首页推荐"))


class PhotoUploadForm(FlaskForm):
    photos = MultipleFileField(_l("上传照片（JPEG、PNG、WebP，每张不超过 10 MB）"))


class ActionForm(FlaskForm):
    """A bare form for POST buttons: carries only the CSRF token."""


class ShipForm(FlaskForm):
    carrier = StringField(_l("快递公司"), validators=[DataRequired(), Length(max=40)])
    tracking_no = StringField(_l("快递单号"), validators=[DataRequired(), Length(max=64)])


class RefundForm(FlaskForm):
    amount = StringField(_l("退款金额（元）"), validators=[DataRequired(), Length(max=20)])
    reason = StringField(_l("退款原因"), validators=[Optional(), Length(max=200)])
    restock = BooleanField(_l("把本单未退回的商品全部放回库存"))

