"""The pages' forms (flask-wtf: each carries its CSRF token) and the "try it" form, built from a
model's input columns."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    FloatField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from shared.schemas.models import NAME_PATTERN
from shared.webhooks.addresses import MAX_URL_CHARS
from shared.webhooks.table import EVENTS


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token."""


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class RegisterForm(LoginForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=1024)])


class UploadForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    file = FileField("Model file", validators=[FileRequired()])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    sample = TextAreaField("Sample rows (JSON, optional)", validators=[Optional()])


class KeyCreateForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    expires_in_days = IntegerField(
        "Expires in (days)", default=90, validators=[InputRequired(), NumberRange(1, 365)]
    )


class KeyRenameForm(FlaskForm):
    name = StringField("New name", validators=[DataRequired(), Length(max=100)])


def _some_event(form: FlaskForm, field: Field) -> None:
    """At least one box checked. Not DataRequired: its `required` flag would render on every
    checkbox, and a browser then refuses the form unless all of them are checked."""
    if not field.data:
        raise ValidationError("Choose at least one event.")


class WebhookEditForm(FlaskForm):
    """An endpoint's URL and events (its model filter is fixed at creation, as in the API)."""

    url = StringField(
        "Receiver URL",
        validators=[DataRequired(), Length(max=MAX_URL_CHARS)],
        description="https, on a public address",
    )
    events = SelectMultipleField(
        "Events",
        choices=[SelectChoice(e) for e in EVENTS],
        validators=[_some_event],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )


class WebhookCreateForm(FlaskForm):
    url = StringField(
        "Receiver URL",
        validators=[DataRequired(), Length(max=MAX_URL_CHARS)],
        description="https, on a public address",
    )
    events = SelectMultipleField(
        "Events",
        choices=[SelectChoice(e) for e in EVENTS],
        default=["job.succeeded", "job.failed"],
        validators=[_some_event],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )
    # Filled per request with the caller's model versions ("" = every model).
    model_id = SelectField("Only this model version", choices=[], validate_choice=True)


class AliasForm(FlaskForm):
    alias = StringField(
        "Alias",
        validators=[DataRequired(), Length(max=32)],
        description="a-z, digits and '-', starting with a letter; e.g. production, staging",
    )
    # Filled per request with the name's ready versions.
    version = SelectField("Version", choices=[], coerce=int, validate_choice=True)


NAME_HELP = f"Letters, digits, '.', '_' or '-' ({NAME_PATTERN})"

_MISSING = ""


def _column_field(column: dict[str, Any]) -> Field:
    """One input per column, typed as the model expects it; empty is a missing value where the
    model accepts one."""
    label, nullable = column["name"], column.get("nullable", False)
    required = [Optional()] if nullable else [InputRequired()]
    description = f"{column['dtype']}{', may be empty' if nullable else ''}"
    values = column.get("categories") or ([True, False] if column["dtype"] == "boolean" else None)
    if values is not None:
        choices = [SelectChoice(_MISSING, "(missing)")] if nullable else []
        choices += [SelectChoice(_text(v)) for v in values]
        return SelectField(label, choices=choices, description=description)
    if column["dtype"] == "integer":
        return IntegerField(label, validators=required, description=description)
    if column["dtype"] == "number":
        return FloatField(label, validators=required, description=description)
    return StringField(label, validators=required, description=description)


def try_form(columns: list[dict[str, Any]], has_proba: bool) -> type[FlaskForm]:
    """A form class with a field `c<i>` per input column (names may hold any character)."""

    class TryForm(FlaskForm):
        pass

    for index, column in enumerate(columns):
        setattr(TryForm, f"c{index}", _column_field(column))
    if has_proba:
        TryForm.return_probabilities = BooleanField("Return probabilities")  # type: ignore[attr-defined]
    return TryForm


def row_of(form: FlaskForm, columns: list[dict[str, Any]]) -> dict[str, Any]:
    """The input row as the API takes it (an object keyed by column name, None for missing)."""
    row: dict[str, Any] = {}
    for index, column in enumerate(columns):
        value = form[f"c{index}"].data
        row[column["name"]] = _cell(value, column)
    return row


def _text(value: Any) -> str:
    """A choice's text as the browser sends it back (JSON's spelling of booleans)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _cell(value: Any, column: dict[str, Any]) -> Any:
    if value is None or value == _MISSING:
        return None
    values = column.get("categories") or ([True, False] if column["dtype"] == "boolean" else [])
    # The select sends text: give back the value itself (a number stays a number).
    return next((v for v in values if _text(v) == value), value)
