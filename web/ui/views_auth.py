"""Sign in, register and sign out: the API's account code (Argon2 check, user table, the
per-IP auth rate limit) behind HTML forms and a server-side session."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from pydantic import ValidationError

from shared.errors import ApiError
from shared.schemas.auth import Credentials, LoginIn
from web.auth.routes import check_login, create_user
from web.limits import auth_limit, limit
from web.ui.blueprint import bp
from web.ui.forms import ActionForm, LoginForm, RegisterForm
from web.ui.sessions import load_user, page_login_required, sign_in, sign_out

WRONG = "Invalid email or password"


def _next_page() -> str:
    """Where to go after signing in: a path on this site only (never an open redirect)."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    # "//host" and "/\\host" are other sites to a browser.
    if target.startswith("/") and not target.startswith(("//", "/\\")) and not parts.netloc:
        return target
    return url_for("ui.models")


@bp.get("/")
def home():
    return redirect(url_for("ui.models" if load_user() else "ui.login"))


@bp.route("/login", methods=["GET", "POST"])
@limit(auth_limit, methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = check_login(LoginIn(email=form.email.data, password=form.password.data))
        except (ApiError, ValidationError):
            user = None
        if user is not None and user.is_active:
            sign_in(user)
            return redirect(_next_page())
        form.form_errors.append(WRONG)
        return render_template("ui/login.html", form=form), 401
    return render_template("ui/login.html", form=form), 400 if form.errors else 200


@bp.route("/register", methods=["GET", "POST"])
@limit(auth_limit, methods=["POST"])
def register():
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = create_user(Credentials(email=form.email.data, password=form.password.data))
        except ValidationError as err:
            form.form_errors.extend(e["msg"] for e in err.errors(include_url=False))
        except ApiError as err:
            form.form_errors.append(err.message)
        else:
            sign_in(user)
            flash("Welcome! Upload a model to start.")
            return redirect(url_for("ui.models"))
        return render_template("ui/register.html", form=form), 422
    return render_template("ui/register.html", form=form), 400 if form.errors else 200


@bp.post("/logout")
@page_login_required
def logout():
    ActionForm()  # the token was checked before the view (web/ui/blueprint.py)
    sign_out()
    flash("Signed out.")
    return redirect(url_for("ui.login"))
