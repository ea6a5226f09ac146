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
