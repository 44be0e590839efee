"""Flask extension objects, created without an app and bound in create_app."""

from flask_babel import Babel
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
htmx = HTMX()
babel = Babel()
