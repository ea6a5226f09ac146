from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

# Field names match HouseholdInput (and HouseholdError.field), so a service error lands
# on the input it is about. Content rules live in the service; the form only bounds size.


class HouseholdForm(FlaskForm):
    code = StringField(_l("户编码（可不填，自动编号）"), validators=[Optional(), Length(max=16)])
    head_name = StringField(_l("户主姓名"), validators=[DataRequired(), Length(max=20)])
    id_number = StringField(_l("身份证号"), validators=[DataRequired(), Length(max=40)])
    village_id = SelectField(_l("村"), coerce=int, validators=[DataRequired()])
    group_name = StringField(_l("村民小组"), validators=[Optional(), Length(max=40)])
    members = StringField(_l("家庭人口"), validators=[DataRequired(), Length(max=6)], default="1")
    bank_name = StringField(_l("开户银行"), validators=[Optional(), Length(max=80)])
    bank_card = StringField(_l("银行卡号"), validators=[Optional(), Length(max=40)])
    land_mu = StringField(
        _l("流转土地（亩）"), validators=[Optional(), Length(max=12)], default="0"
    )
    employed = BooleanField(_l("入园务工"))
    dividend = BooleanField(_l("产业分红"))
    coop_member = BooleanField(_l("合作社社员"))
    active = BooleanField(_l("在册（取消勾选即停用该户）"), default=True)


class HouseholdImportForm(FlaskForm):
    file = FileField(_l("CSV 文件"), validators=[FileRequired(_l("请选择要导入的 CSV 文件。"))])


class RuleForm(FlaskForm):
    """A new version of a product's benefit rule (0 = the programme default)."""

    product_id = SelectField(_l("商品"), coerce=int)
    share_kind = SelectField(
        _l("帮扶金额计算方式"),
        choices=[("fixed", _l("每单位固定金额")), ("percent", _l("售价的百分比"))],
    )
    share_amount = StringField(
        _l("每单位金额（元）或百分比"), validators=[DataRequired(), Length(max=12)]
    )
    split = SelectField(
        _l("分配方式"),
        choices=[
            ("weighted", _l("按权重分给所有关联农户")),
            ("matched", _l("一对一结对：每单位给目前收入最少的农户")),
        ],
    )
    weight_basis = SelectField(
        _l("权重依据"),
        choices=[
            ("equal", _l("每户相同")),
            ("land", _l("流转土地亩数")),
            ("members", _l("家庭人口")),
        ],
    )
    households = SelectField(
        _l("关联农户"),
        choices=[
            ("all", _l("全部在册农户")),
            ("land", _l("流转土地的农户")),
            ("employed", _l("入园务工的农户")),
            ("dividend", _l("享受分红的农户")),
            ("coop", _l("合作社社员")),
        ],
    )
    note = StringField(_l("备注"), validators=[Optional(), Length(max=200)])


class MergeForm(FlaskForm):
    keep_code = StringField(
        _l("保留的户编码"),
        validators=[DataRequired(), Length(max=16)],
        render_kw={"autocapitalize": "characters", "spellcheck": "false"},
    )
