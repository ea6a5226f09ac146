from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp


class LoginForm(FlaskForm):
    username = StringField(_l("用户名"), validators=[DataRequired(), Length(max=80)])
    password = PasswordField(_l("密码"), validators=[DataRequired(), Length(max=200)])


class RegisterForm(FlaskForm):
    username = StringField(
        _l("用户名"),
        validators=[
            DataRequired(),
            Length(min=3, max=40),
            Regexp(r"^[A-Za-z0-9_.@-]+$", message=_l("只能使用字母、数字和 _ . @ -")),
        ],
    )
    password = PasswordField(_l("密码"), validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        _l("再次输入密码"), validators=[EqualTo("password", message=_l("两次输入的密码不一致"))]
    )


class CodeForm(FlaskForm):
    code = StringField(
        _l("验证码或恢复码"),
        validators=[DataRequired(), Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("当前密码"), validators=[DataRequired(), Length(max=200)])
    password = PasswordField(_l("新密码"), validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        _l("再次输入新密码"),
        validators=[EqualTo("password", message=_l("两次输入的密码不一致"))],
    )
