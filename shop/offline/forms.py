from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, HiddenField, IntegerField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional


class HallSaleForm(FlaskForm):
    token = HiddenField()
    product_id = SelectField(_l("商品"), coerce=int, validators=[InputRequired()])
    quantity = IntegerField(
        _l("数量"), validators=[InputRequired(), NumberRange(min=1, max=9999)], default=1
    )
    unit_price = StringField(
        _l("单价（元，留空按商品售价）"), validators=[Optional(), Length(max=20)]
    )
    payment_method = SelectField(_l("付款方式"), validators=[DataRequired()])
    board_display = RadioField(
        _l("在爱心榜上显示为"),
        choices=[
            ("anonymous", _l("爱心人士（匿名）")),
            ("masked", _l("姓氏加*（如 王*）")),
            ("nickname", _l("昵称")),
        ],
        default="anonymous",
    )
    buyer_name = StringField(
        _l("购买人姓名或昵称（可不填）"), validators=[Optional(), Length(max=40)]
    )
    organization = StringField(
        _l("单位（爱心企业，可不填）"), validators=[Optional(), Length(max=60)]
    )


class SalesUploadForm(FlaskForm):
    channel = SelectField(
        _l("渠道"),
        choices=[("event", _l("展销活动")), ("live", _l("直播")), ("hall", _l("扶贫馆"))],
        default="event",
    )
    session_name = StringField(_l("活动或直播场次名称"), validators=[Optional(), Length(max=80)])
    starts_on = DateField(_l("开始日期"), validators=[Optional()])
    ends_on = DateField(_l("结束日期"), validators=[Optional()])
    file = FileField(_l("CSV 文件"), validators=[FileRequired(_l("请选择要上传的 CSV 文件。"))])


class IncomeUploadForm(FlaskForm):
    payer = SelectField(_l("默认付款方（文件里没填付款方的行）"), validators=[Optional()])
    file = FileField(_l("CSV 文件"), validators=[FileRequired(_l("请选择要上传的 CSV 文件。"))])


class IncomeForm(FlaskForm):
    household_code = StringField(_l("户编码"), validators=[DataRequired(), Length(max=16)])
    channel = SelectField(_l("收入类别"), validators=[DataRequired()])
    period = StringField(
        _l("期间（如 2026、2026-03、2026-Q1）"), validators=[DataRequired(), Length(max=16)]
    )
    quantity = StringField(_l("数量（亩 / 天 / 份）"), validators=[Optional(), Length(max=12)])
    rate = StringField(
        _l("单价（元：每亩租金 / 日工资 / 每份）"), validators=[Optional(), Length(max=20)]
    )
    amount = StringField(
        _l("金额（元，可由数量×单价算出）"), validators=[Optional(), Length(max=20)]
    )
    payer = SelectField(_l("付款方"), validators=[DataRequired()])
    memo = StringField(_l("备注"), validators=[Optional(), Length(max=120)])


class RosterForm(FlaskForm):
    channel = SelectField(
        _l("按名册生成"),
        choices=[
            ("land", _l("土地流转租金：亩数 × 每亩租金")),
            ("dividend", _l("产业分红：分红池按权重分配")),
            ("coop", _l("合作社分红：每位社员一份")),
            ("wages", _l("务工工资：生成务工名册，填写天数后上传")),
        ],
    )
    period = StringField(_l("期间"), validators=[DataRequired(), Length(max=16)])
    rate = StringField(
        _l("单价（元：每亩租金 / 日工资 / 每份金额）"), validators=[Optional(), Length(max=20)]
    )
    pool = StringField(_l("分红池总额（元，仅分红）"), validators=[Optional(), Length(max=20)])
    basis = SelectField(
        _l("分红权重"),
        choices=[("equal", _l("每户相同")), ("members", _l("家庭人口")), ("land", _l("流转亩数"))],
        default="equal",
    )
    payer = SelectField(_l("付款方"), validators=[DataRequired()])


class ReportForm(FlaskForm):
    class Meta:
        csrf = False

    group = SelectField(
        _l("按"),
        choices=[("channel", _l("渠道")), ("product", _l("商品")), ("day", _l("日期"))],
        default="channel",
    )
    start = DateField(_l("从"), validators=[Optional()])
    end = DateField(_l("到"), validators=[Optional()])
    days = IntegerField(validators=[Optional(), NumberRange(min=1, max=3660)])
