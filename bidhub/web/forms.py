"""WTForms for every page that takes input; each field is validated on the server."""

from __future__ import annotations

import functools
import math
from decimal import Decimal

from babel import support
from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    DateTimeField,
    DateTimeLocalField,
    DecimalField,
    FloatField,
    HiddenField,
    IntegerField,
    MonthField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.csrf.core import CSRFTokenField
from wtforms.fields.choices import SelectChoice
from wtforms.i18n import messages_path
from wtforms.validators import (
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)

from bidhub.clock import now
from bidhub.domain.errors import BidhubError, InvalidRequest
from bidhub.domain.typed_text import visible_text
from bidhub.services import limits, users
from bidhub.services.branches import branch_label
from bidhub.web.i18n import format_yuan_exact, translate
from bidhub.web.labels import (
    APPEAL_OUTCOME_LABELS,
    DECISION_CHOICE_LABELS,
    RELEASE_REASON_LABELS,
    REP_STATUS_LABELS,
    ROLE_LABELS,
    metric_label,
    normaliser_label,
)
from bidhub.web.params import (
    MAX_AMOUNT_CHARS,
    MAX_DB_INT,
    MAX_YEAR,
    MIN_YEAR,
    control_characters,
    is_sensible_year,
    parse_int,
    parse_yuan,
    without_control_characters,
)

# What a datetime-local input sends, then what people type where a browser shows a text box
# (the form DATETIME_MESSAGE asks for); the first is the one a form is drawn with.
LOCAL_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
                          "%Y-%m-%d %H:%M:%S"]
# No number a form asks for comes near this; larger ones are typing mistakes or probes.
MAX_DECIMAL = 1e12


def options(labels) -> list[SelectChoice]:
    """Select options from a mapping of value -> label."""
    return [SelectChoice(getattr(value, "value", value), label) for value, label in labels.items()]


def choice_id(value) -> int:
    """A select's id (0 for its empty choice): ASCII digits within the database's range.

    `int` would take `١` or an id too large for the database, which then fails in the query.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = parse_int(value) if isinstance(value, str) else None
    if number is None:
        raise ValueError("not an id")
    return number


def refuse_hostile_input(form, field) -> None:
    """Stop a field's validation on input no field should accept, whatever its own validators.

    Runs first so that the field's own validators never see it: NumberRange cannot compare a
    NaN, and a NUL byte would reach PostgreSQL, which refuses it. Text that passes is cleaned
    for the validators after it (clean_typed_text).
    """
    message = hostile_input_message(field)
    if message is not None:
        # The one message says it all: not also WTForms' "Not a valid integer value."
        field.errors.clear()
        # Text is shown again without the offending characters, so nothing typed is lost.
        field.data = (without_control_characters(field.data,
                                                 multiline=isinstance(field, TextAreaField))
                      if isinstance(field.data, str) else None)
        raise StopValidation(message)
    if is_text_field(field):
        clean_typed_text(field)
    elif is_blank_number_or_date(field):
        # Spaces alone are as empty as nothing typed: InputRequired, which reads the raw text,
        # says the field is required, and not, as well, that the spaces are no number (or no
        # date) and out of the field's range.
        field.raw_data = ["", *field.raw_data[1:]]
        field.errors.clear()


def is_blank_number_or_date(field) -> bool:
    """A number or date field whose input is only spaces (or invisible characters)."""
    raw = field.raw_data[0] if getattr(field, "raw_data", None) else None
    return (isinstance(field, IntegerField | DecimalField | FloatField | DateTimeField)
            and isinstance(raw, str) and raw != "" and not visible_text(raw))


def is_text_field(field) -> bool:
    """A field people type text into (a password or a file's text is taken as typed, spaces
    and all)."""
    return isinstance(field, StringField) and not isinstance(field, PasswordField | FileTextField)


class FileTextField(TextAreaField):
    """The whole text of a file, taken exactly as typed (control characters are still refused).

    A rule file is checked, replayed and adopted as one text, and its version is a hash of what
    it says: cleaning it (clean_typed_text drops zero-width spaces, which may sit inside a key or
    a name) would adopt other rules than the ones checked and replayed.
    """


def clean_typed_text(field) -> None:
    """Judge and keep a text field's value without invisible formatting characters (zero-width
    spaces, direction overrides) and surrounding whitespace (visible_text).

    Both the value and the raw input change, so that InputRequired, Optional and Length see
    the cleaned text: a value of only zero-width spaces is as empty as one of only spaces.
    """
    if isinstance(field.data, str):
        field.data = visible_text(field.data)
    if field.raw_data and isinstance(field.raw_data[0], str):
        field.raw_data = [visible_text(field.raw_data[0]), *field.raw_data[1:]]


def hostile_input_message(field) -> str | None:
    """Why a field's input is refused before its own validators run, or None."""
    raw = field.raw_data[0] if getattr(field, "raw_data", None) else None
    for text, multiline in ((raw, isinstance(field, TextAreaField)),
                            (getattr(getattr(field, "data", None), "filename", None), False)):
        if isinstance(text, str) and control_characters(text, multiline=multiline):
            return _("Control characters (such as NUL) are not allowed here; they are removed "
                     "below. Check the text and send it again.")
    typed = isinstance(raw, str) and bool(visible_text(raw))
    if isinstance(field, IntegerField) and typed and (
            field.process_errors or parse_int(raw.translate(FULL_WIDTH_DIGITS),
                                              minimum=-MAX_DB_INT, maximum=MAX_DB_INT) is None):
        return whole_number_message(field)
    data = getattr(field, "data", None)
    if isinstance(data, int) and not isinstance(data, bool) and abs(data) > MAX_DB_INT:
        if isinstance(field, YuanField):  # 12万 is an amount too: not "digits 0-9"
            return amount_range_message(*number_range(field, 0, MAX_DB_INT))
        return whole_number_message(field)
    if isinstance(field, DecimalField | FloatField) and typed:
        finite = data is not None and (data.is_finite() if isinstance(data, Decimal)
                                       else math.isfinite(data))
        if not finite or abs(data) > MAX_DECIMAL:
            low, high = number_range(field, -MAX_DECIMAL, MAX_DECIMAL)
            return _("Enter a number between %(low)s and %(high)s.", low=shown_bound(low),
                     high=shown_bound(high))
    if (isinstance(field, DateTimeField) and not isinstance(field, HireDateField)
            and data is not None and not is_sensible_year(data.year)):
        return _("Enter a date between the years %(first)d and %(last)d.",
                 first=MIN_YEAR, last=MAX_YEAR)
    return None


def whole_number_message(field=None) -> str:
    low, high = number_range(field, -MAX_DB_INT, MAX_DB_INT)
    return _("Enter a whole number in digits 0-9, between %(low)s and %(high)s.",
             low=shown_bound(low), high=shown_bound(high))


# Full-width digits, as Chinese input methods type them, read as ASCII ones.
FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９－＋", "0123456789-+")


def number_range(field, low, high) -> tuple:
    """The bounds the field's own NumberRange sets, else `low` and `high`: a message names the
    range the field takes, not the database's."""
    for validator in getattr(field, "validators", ()):
        if isinstance(validator, NumberRange):
            return (low if validator.min is None else validator.min,
                    high if validator.max is None else validator.max)
    return low, high


def shown_bound(value) -> str:
    """A bound as people read it: 1,000,000,000,000 rather than 1e+12; 0.5 as it is."""
    return f"{int(value):,}" if value == int(value) else f"{value:,}"


@functools.lru_cache(maxsize=16)
def wtforms_catalogue(locale: str) -> support.NullTranslations:
    """WTForms' own messages in `locale`, read once per process: the file ships with WTForms."""
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


# What a select (or a set of radio buttons) says of a value it does not offer, whether or not
# the value could be read as one of its kind (a tampered form: branch_id=-1, sponsor=abc).
CHOICE_MESSAGE = _l("Choose one of the listed options.")
# What a date or date-time field says of a day or time that is none (2026-02-30, 25:00): the
# form to type, where WTForms' own "Not a valid datetime value." does not say it.
DATE_MESSAGE = _l("Enter the date as year-month-day, for example 2026-12-31.")
DATETIME_MESSAGE = _l("Enter the date and time as year-month-day hour:minute, for example "
                      "2026-12-31 18:00.")


def date_format_message(field) -> str | None:
    """The message naming the form a date (or date-time) field takes, None for other fields."""
    if isinstance(field, TimeField | MonthField):
        return None  # no form has one; their forms are others
    if isinstance(field, DateField):
        return DATE_MESSAGE
    return DATETIME_MESSAGE if isinstance(field, DateTimeField) else None


# A length limit above this is for free text: notes, reasons, plans, answers, titles, addresses.
# A browser cuts a longer paste at a maxlength without a word, so such a field sets none and
# the form refuses a text too long with both lengths (refuse_too_long), keeping it in the field.
# At or below it the field holds a name, a code or a username, far longer than any real one:
# there the maxlength stays, and typing stops at the limit.
LINE_LIMIT = 100


def length_limit(field) -> int | None:
    """The most characters the field's Length validator takes, None without one."""
    for validator in getattr(field, "validators", ()):
        if isinstance(validator, Length) and validator.max is not None and validator.max >= 0:
            return validator.max
    return None


def is_free_text(field) -> bool:
    limit = length_limit(field)
    return limit is not None and limit > LINE_LIMIT


def refuse_too_long(form, field) -> None:
    """Refuse free text past its limit with the limit and the length sent, before Length does
    (whose message names only the limit); the text is shown again whole."""
    limit = length_limit(field)
    if (limit is not None and limit > LINE_LIMIT and isinstance(field.data, str)
            and len(field.data) > limit):
        field.errors.clear()
        raise StopValidation(too_long_message(limit, len(field.data)))


def too_long_message(limit: int, length: int) -> str:
    """What a text of `length` characters past its `limit` is refused with, both lengths."""
    return _("At most %(maximum)s characters fit here; the text sent has %(length)s. Shorten "
             "it and send it again.", maximum=f"{limit:,}", length=f"{length:,}")


# WTForms' own validators speak in another voice than the rest of the product and show their
# numbers raw (1000 where every other message says 1,000). Forms use these three instead: the
# same checks, the project's words, numbers as the other messages show them (shown_bound). A
# test walks every form for a validator that would still show one of WTForms' messages.
FILL_IN_MESSAGE = _l("Fill in this field.")
FILE_MESSAGE = _l("Choose a file.")
TICK_MESSAGE = _l("Tick the box to confirm.")


def required_message(field) -> str:
    """What a field left empty says: a choice is asked for as a choice, a file as a file."""
    if isinstance(field, SelectField):
        return CHOICE_MESSAGE
    if isinstance(field, FileField):
        return FILE_MESSAGE
    if isinstance(field, BooleanField):
        return TICK_MESSAGE
    return FILL_IN_MESSAGE


class Required(InputRequired):
    """InputRequired, its message in the project's words (required_message)."""

    def __call__(self, form, field) -> None:
        if field.raw_data and field.raw_data[0]:
            return
        field.errors[:] = []
        raise StopValidation(self.message or required_message(field))


class TextLength(Length):
    """Length, its message naming the limit and the length sent, both as numbers are shown
    elsewhere (too_short_message, too_long_message)."""

    def __call__(self, form, field) -> None:
        length = len(field.data) if field.data else 0
        if length >= self.min and (self.max == -1 or length <= self.max):
            return
        if self.message is not None:
            raise ValidationError(self.message)
        if length < self.min:
            raise ValidationError(too_short_message(self.min, length))
        raise ValidationError(too_long_message(self.max, length))


def too_short_message(minimum: int, length: int) -> str:
    return _("At least %(minimum)s characters are needed here; the text sent has %(length)s. "
             "Add to it and send it again.", minimum=f"{minimum:,}", length=f"{length:,}")


class InRange(NumberRange):
    """NumberRange, its message in the project's words with the bounds as people read them
    (1,000, not 1000 or 1000.0): a whole number where the field takes only those."""

    def __call__(self, form, field) -> None:
        try:
            super().__call__(form, field)
        except ValidationError:
            if self.message is not None:
                raise
            raise ValidationError(range_message(field, self.min, self.max)) from None


def range_message(field, low, high) -> str:
    if low is not None and high is not None:
        if isinstance(field, IntegerField):
            return _("Enter a whole number between %(low)s and %(high)s.",
                     low=shown_bound(low), high=shown_bound(high))
        return _("Enter a number between %(low)s and %(high)s.", low=shown_bound(low),
                 high=shown_bound(high))
    if low is not None:
        return _("Enter a number of at least %(low)s.", low=shown_bound(low))
    return _("Enter a number of at most %(high)s.", high=shown_bound(high))


class Form(FlaskForm):
    """Every form refuses control characters, malformed numbers and far-off dates first, and
    judges text without its invisible characters and surrounding spaces (clean_typed_text).
    Every select refuses a value it does not offer with CHOICE_MESSAGE, and every date or
    date-time field names the form it takes (date_format_message). Free text carries no
    maxlength and is refused past its limit with both lengths (LINE_LIMIT)."""

    class Meta(FlaskForm.Meta):
        def bind_field(self, form, unbound_field, options):
            field = super().bind_field(form, unbound_field, options)
            if is_free_text(field) and field.flags.maxlength is not None:
                del field.flags.maxlength
            # Set before the form reads its input, where WTForms reports a value its select
            # cannot read ("Invalid Choice: could not coerce.").
            if isinstance(field, SelectField):
                field.invalid_value_message = field.invalid_value_message or CHOICE_MESSAGE
                field.invalid_choice_message = field.invalid_choice_message or CHOICE_MESSAGE
            elif isinstance(field, DateTimeField):
                field.invalid_value_message = (field.invalid_value_message
                                               or date_format_message(field))
            return field

        def get_translations(self, form):
            # Flask-WTF reads and parses WTForms' catalogue again on every request that builds
            # a form (a field without a label asks for one); it is the same file every time.
            locale = get_locale()
            if locale is None or not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return wtforms_catalogue(str(locale))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self:
            field.validators = (refuse_hostile_input, refuse_too_long, *field.validators)

    def validate(self, extra_validators=None) -> bool:
        """As WTForms validates; a hidden field the page drew but nobody types in (a version,
        a one-time key) that comes back unreadable is reported for the whole form, which is
        where the person sending it can see it."""
        valid = super().validate(extra_validators)
        hidden = [field for field in self if isinstance(field, HiddenField)
                  and not isinstance(field, CSRFTokenField) and field.errors]
        csrf = getattr(self, "csrf_token", None)
        if hidden and not (csrf is not None and csrf.errors):
            message = _("The form expired. Reload the page and try again.")
            if message not in self.form_errors:
                self.form_errors.append(message)
        return valid

    def add_error(self, error: BidhubError) -> None:
        """Attach a use case's refusal to the field it concerns, or to the whole form; each
        of several refused at once (InvalidFields) to its own."""
        for refusal in error.refusals:
            field = (getattr(self, refusal.field, None) if getattr(refusal, "field", None)
                     else None)
            if field is not None and hasattr(field, "errors"):
                field.errors = [*field.errors, translate(refusal)]
            else:
                self.form_errors.append(translate(refusal))


NEW_PASSWORD_LENGTH = TextLength(min=limits.MIN_PASSWORD_LENGTH, max=limits.MAX_PASSWORD_LENGTH)


class LoginForm(Form):
    username = StringField(_l("Username"), validators=[Required(), TextLength(max=64)])
    password = PasswordField(_l("Password"),
                             validators=[Required(), TextLength(max=limits.MAX_PASSWORD_LENGTH)])


class PasswordForm(Form):
    current_password = PasswordField(_l("Current password"), validators=[Required()])
    new_password = PasswordField(_l("New password"),
                                 validators=[Required(), NEW_PASSWORD_LENGTH])
    confirm = PasswordField(_l("New password again"),
                            validators=[Required(), EqualTo("new_password",
                                                                 _l("The two passwords differ."))])


class RoundForm(Form):
    title = StringField(_l("Round title"),
                        validators=[Required(), TextLength(max=limits.MAX_ROUND_TITLE_LENGTH)])
    branch_id = SelectField(_l("Branch"), coerce=choice_id, validators=[Optional()])
    opens_at = DateTimeLocalField(_l("Opens at (local time)"), format=LOCAL_DATETIME_FORMATS,
                                  validators=[Required()])
    closes_at = DateTimeLocalField(_l("Deadline (local time)"), format=LOCAL_DATETIME_FORMATS,
                                   validators=[Required()])
    version = HiddenField()
    # A new round's one-time key: the same form sent twice creates one round.
    submission_key = HiddenField()


# Required only when the account has a rep, which the service knows: the form states the length.
REVIEW_HELP = _l("Needed when the account has a rep: at least %(count)d characters.",
                 count=limits.MIN_REVIEW_LENGTH)


class ReleaseForm(Form):
    account = StringField(_l("Account (customer number or exact name)"),
                          validators=[Required(), TextLength(max=200)])
    reason = SelectField(_l("Release reason"),
                         choices=options(RELEASE_REASON_LABELS),
                         validators=[Required()])
    note = StringField(_l("Other reason / note"), validators=[Optional(), TextLength(max=500)])
    review_text = TextAreaField(_l("Review: why does the account leave its rep?"),
                                description=REVIEW_HELP,
                                validators=[Optional(), TextLength(max=limits.MAX_REVIEW_LENGTH)])
    # What the page showed before the confirmation: the account (its id) and who held it
    # (their id, or "none"), whom the review is written about. Empty on the first post.
    shown_account = HiddenField()
    owner = HiddenField()


PLAN_HELP = _l("At least %(count)d characters.", count=limits.MIN_PLAN_LENGTH)


class YuanField(StringField):
    """Whole yuan as people write amounts: 120000, 120,000, ¥120,000 or 12万 (parse_yuan)."""

    def process_formdata(self, valuelist) -> None:
        self.data = None
        typed = visible_text(valuelist[0]) if valuelist else ""
        if typed:
            # Any size the text can hold: an amount past the field's range gets the range's
            # message (NumberRange), not one saying it is no amount.
            self.data = parse_yuan(typed, maximum=10**MAX_AMOUNT_CHARS)
            if self.data is None:
                raise ValueError(_("Enter an amount in whole yuan, such as 120000, 120,000 or "
                                   "12万."))

    def _value(self) -> str:
        # What was typed comes back as it was (12万, or a mistake to correct).
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)

    def pre_validate(self, form) -> None:
        if self.process_errors:
            raise StopValidation()  # the amount's own message says it all


class AmountRange(NumberRange):
    """An amount's range, its bounds shown as people read amounts (format_yuan_exact): "between
    ¥0 and ¥2,000,000,000", 0元 and 20亿元 on a Chinese page, not WTForms' raw 2000000000."""

    def __call__(self, form, field) -> None:
        amount = field.data
        if amount is not None and ((self.min is not None and amount < self.min)
                                   or (self.max is not None and amount > self.max)):
            raise ValidationError(amount_range_message(self.min, self.max))


def amount_range_message(low: int, high: int) -> str:
    return _("Enter an amount between %(low)s and %(high)s.", low=format_yuan_exact(low),
             high=format_yuan_exact(high))


class TokenSignedWhenDrawn(CSRFTokenField):
    """The CSRF field of a form that is sent far more often than drawn again: its token is
    signed when the field is drawn (a refused bid's form), not whenever the form is built. A
    bid that goes in only redirects, so its signing was work for nothing. The submitted token
    is checked as before (CSRFProtect, or the field's own check without it)."""

    def process(self, *args, **kwargs) -> None:
        HiddenField.process(self, *args, **kwargs)

    def _value(self) -> str:
        return self.csrf_impl.generate_csrf_token(self)


class TokenWhenDrawnCSRF(FlaskForm.Meta.csrf_class):
    field_class = TokenSignedWhenDrawn


class BidForm(Form):
    class Meta:
        csrf_class = TokenWhenDrawnCSRF

    account_plan = TextAreaField(
        _l("Account plan"), description=PLAN_HELP,
        validators=[Required(),
                    TextLength(min=limits.MIN_PLAN_LENGTH, max=limits.MAX_PLAN_LENGTH)])
    committed_revenue_yuan = YuanField(
        _l("Committed 12-month revenue (yuan)"),
        validators=[Required(), AmountRange(min=limits.MIN_REVENUE_YUAN,
                                                max=limits.MAX_REVENUE_YUAN)])
    visit_plan = TextAreaField(
        _l("Visit plan for the first 90 days"), description=PLAN_HELP,
        validators=[Required(),
                    TextLength(min=limits.MIN_PLAN_LENGTH, max=limits.MAX_PLAN_LENGTH)])
    submission_key = HiddenField()


class BidEditForm(BidForm):
    """The bid form over a saved bid, carrying the bid's version as it was drawn."""

    version = HiddenField()


class DecisionForm(Form):
    kind = RadioField(_l("Decision"), choices=options(DECISION_CHOICE_LABELS),
                      validators=[Required()])
    bid_id = SelectField(_l("Bidder"), coerce=choice_id, validators=[Optional()])
    reason = TextAreaField(
        _l("Written reason (required unless you accept the ranking)"),
        description=_l("At least %(count)d characters.", count=limits.MIN_REASON_LENGTH),
        validators=[Optional(), TextLength(max=limits.MAX_REASON_LENGTH)])
    version = HiddenField()


class TransferForm(Form):
    """A direct transfer; the account and the rep are ids picked from type-ahead lists."""

    account = HiddenField(_l("Account"), validators=[
        Required(message=_l("Choose the account to transfer."))])
    to_rep = HiddenField(_l("To rep"), validators=[
        Required(message=_l("Choose the rep who receives the account."))])
    from_rep = HiddenField()  # set when the capacity board sent the manager here for one rep
    reason = TextAreaField(
        _l("Reason for the transfer"),
        description=_l("At least %(count)d characters.", count=limits.MIN_REASON_LENGTH),
        validators=[Required(),
                    TextLength(min=limits.MIN_REASON_LENGTH, max=limits.MAX_REASON_LENGTH)])
    review_text = TextAreaField(_l("Review: why does the account leave its rep?"),
                                description=REVIEW_HELP,
                                validators=[Optional(), TextLength(max=limits.MAX_REVIEW_LENGTH)])


class ConfirmTransferForm(TransferForm):
    # The owner the summary showed ("none" for no owner): another owner now makes it stale.
    owner = HiddenField(validators=[Required()])


class HireDateField(DateField):
    """The day a person was hired, judged by the users service's rule (users.check_hire_date:
    from 1950 to the department's today), as `bidhub create-user` judges it, instead of by the
    years other dates take (MIN_YEAR to MAX_YEAR, which would refuse a rep hired in 1998 and
    take one hired next year). The day is only compared, never moved between time zones, so a
    far-off year is as safe to judge as any. On the edit form the day the user already has
    (`object_data`) is not judged, as `users.update_user` judges only a changed one: a date an
    import wrote is no bar to saving the user's other details."""

    def post_validate(self, form, validation_stopped: bool) -> None:
        if (validation_stopped or self.errors or self.data is None
                or self.data == self.object_data):
            return
        try:
            users.check_hire_date(self.data, now(), current_app.config["TIMEZONE"])
        except InvalidRequest as error:
            raise ValidationError(translate(error)) from None


class UserForm(Form):
    username = StringField(_l("Username"),
                           description=_l("Letters, digits and . _ - @, without spaces."),
                           validators=[Required(), TextLength(min=2, max=64)])
    display_name = StringField(_l("Name"), validators=[
        Required(), TextLength(max=limits.MAX_DISPLAY_NAME_LENGTH)])
    password = PasswordField(
        _l("Initial password"),
        description=_l("At least %(count)d characters.", count=limits.MIN_PASSWORD_LENGTH),
        validators=[Required(),
                    TextLength(min=limits.MIN_PASSWORD_LENGTH, max=limits.MAX_PASSWORD_LENGTH)])
    role = SelectField(_l("Role"), choices=options(ROLE_LABELS))
    branch_id = SelectField(_l("Branch"), coerce=choice_id, validators=[Optional()])
    hired_on = HireDateField(_l("Hire date"), validators=[Optional()])


class EditUserForm(Form):
    display_name = StringField(_l("Name"), validators=[
        Required(), TextLength(max=limits.MAX_DISPLAY_NAME_LENGTH)])
    role = SelectField(_l("Role"), choices=options(ROLE_LABELS))
    branch_id = SelectField(_l("Branch"), coerce=choice_id, validators=[Optional()])
    status = SelectField(_l("Status"),
                         choices=options(REP_STATUS_LABELS))
    is_active = BooleanField(_l("Can sign in"))
    # Shown for reps and anyone with a hire date; a form without it keeps the stored one.
    hired_on = HireDateField(_l("Hire date"), validators=[Optional()])


class SetPasswordForm(Form):
    new_password = PasswordField(_l("New password"),
                                 validators=[Required(), NEW_PASSWORD_LENGTH])


class ConfirmForm(Form):
    """A form with only the CSRF token, for buttons that change state."""

    version = HiddenField()


class AcceptUnflaggedForm(Form):
    """The set of listings a confirmation showed, so that only that set is decided."""

    listing_ids = HiddenField(validators=[Required()])
    version = HiddenField(validators=[Required()])


class BranchNamesForm(Form):
    name = StringField(_l("Branch name"), validators=[
        Required(), TextLength(max=limits.MAX_BRANCH_NAME_LENGTH)])
    name_zh = StringField(_l("Chinese name"), validators=[
        Optional(), TextLength(max=limits.MAX_BRANCH_NAME_LENGTH)])


class BranchForm(BranchNamesForm):
    code = StringField(_l("Code"), description=_l("Letters A-Z, digits, '-' and '_'."),
                       validators=[Required(), TextLength(max=limits.MAX_BRANCH_CODE_LENGTH)])


class BranchActivityForm(Form):
    """Deactivating or reactivating a branch, once the admin has ticked that they mean it."""

    confirm = BooleanField(_l("I have read what this changes."), validators=[
        Required(message=_l("Tick the box to confirm."))])


def branch_choices(branches, *, empty_label) -> list[SelectChoice]:
    locale = get_locale()
    return options({0: empty_label} | {branch.id: branch_label(branch, locale)
                                       for branch in branches})


class RulesDraftForm(Form):
    # No length validator: it would put a maxlength on the editor, and a browser cuts a longer
    # paste there without a word. The rules' own limit (MAX_RULE_BYTES, in bytes) refuses a
    # draft too large with its size when it is checked or adopted.
    text = FileTextField(_l("Rule file (TOML)"), validators=[Required()])
    note = StringField(_l("Change note"), validators=[Optional(), TextLength(max=1000)])
    expected_active_id = HiddenField()
    round_id = SelectField(_l("Replay round"), coerce=choice_id, validators=[Optional()])


# Upper bound of the settings form's counts: no round reaches it.
MAX_SETTING_COUNT = 1000
# Labels of the numeric [eligibility] settings; which settings there are, their kind and range
# come from the eligibility registry (a setting without a label here shows its key).
ELIGIBILITY_LABELS = {
    "capacity_max": _l("Capacity maximum (accounts)"),
    "capacity_target": _l("Capacity target (accounts)"),
    "min_tenure_months": _l("Minimum tenure (months)"),
    "max_open_incidents": _l("Maximum open accountability incidents"),
    "cooldown_months": _l("Cooldown before winning back (months)"),
}


def eligibility_numbers() -> dict:
    """The numeric [eligibility] settings of the registry (key -> Setting), in its order."""
    from bidhub.domain.eligibility import ELIGIBILITY_SETTINGS

    return {key: setting for key, setting in ELIGIBILITY_SETTINGS.items()
            if setting.kind != "boolean"}


def eligibility_fields() -> dict:
    """A form field per numeric [eligibility] setting, with the registry's range."""
    from wtforms import DecimalField

    fields = {}
    for key, setting in eligibility_numbers().items():
        validators = [Optional() if setting.default is None else Required(),
                      InRange(min=setting.minimum, max=setting.maximum)]
        label = ELIGIBILITY_LABELS.get(key, key)
        fields[key] = (IntegerField(label, validators=validators) if setting.kind == "whole"
                       else DecimalField(label, places=None, validators=validators))
    return fields


# A factor weight's bound as the range message shows it: 1000, not the float 1000.0.
WEIGHT_BOUND = (int(limits.MAX_FACTOR_WEIGHT) if float(limits.MAX_FACTOR_WEIGHT).is_integer()
                else limits.MAX_FACTOR_WEIGHT)


def rules_settings_form(rules, formdata=None):
    """The tunable numbers of a rule set as a form: thresholds, caps and every factor weight."""
    from wtforms import DecimalField

    # Fields are shown in the order they are created: eligibility first, then caps.
    RulesSettingsForm = type("RulesSettingsForm", (Form,), {
        **eligibility_fields(),
        "max_awards_per_rep_per_round": IntegerField(
            _l("Awards per rep per round (cap)"),
            validators=[Optional(), InRange(min=1, max=MAX_SETTING_COUNT)]),
        "min_bids_per_listing": IntegerField(
            _l("Minimum eligible bids per listing"),
            validators=[Required(), InRange(min=0, max=MAX_SETTING_COUNT)]),
    })

    for index, factor in enumerate(rules.factors):
        setattr(RulesSettingsForm, f"weight_{index}", DecimalField(
            _("%(metric)s (%(normaliser)s)", metric=metric_label(factor.metric),
              normaliser=normaliser_label(factor.normaliser)), places=None,
            validators=[Required(), InRange(min=-WEIGHT_BOUND, max=WEIGHT_BOUND)]))
    values = {
        **{key: getattr(rules.eligibility, key) for key in eligibility_numbers()},
        "max_awards_per_rep_per_round": rules.caps.max_awards_per_rep_per_round,
        "min_bids_per_listing": rules.min_bids_per_listing,
        **{f"weight_{index}": factor.weight for index, factor in enumerate(rules.factors)},
    }
    return RulesSettingsForm(formdata=formdata, data=values)


def changed_settings(form, drawn, rules) -> tuple[dict, dict]:
    """What the admin changed in the settings form: the key paths and values that differ from
    the form `drawn` from `rules`, and the changed weights by the metric their factor scores
    (a draft may have moved or dropped that factor since)."""
    count = len(rules.factors)
    before = settings_from(drawn, count)
    changed = {path: value for path, value in settings_from(form, count).items()
               if value != before[path]}
    weights = {rules.factors[index].metric: changed.pop(f"factors[{index}].weight")
               for index in range(count) if f"factors[{index}].weight" in changed}
    return changed, weights


def settings_from(form, factor_count: int) -> dict:
    """Rule-file key paths and values from a submitted settings form."""
    def number(value):
        return None if value is None else (int(value) if value == int(value) else float(value))

    settings = {
        **{f"eligibility.{key}": number(form[key].data) for key in eligibility_numbers()},
        "caps.max_awards_per_rep_per_round": form.max_awards_per_rep_per_round.data,
        "allocation.min_bids_per_listing": form.min_bids_per_listing.data,
    }
    for index in range(factor_count):
        settings[f"factors[{index}].weight"] = float(getattr(form, f"weight_{index}").data)
    return settings


# An appeal's ground and management's answers are read by the other side: long enough to say
# something, bounded as a reason is.
APPEAL_TEXT_LENGTH = TextLength(min=limits.MIN_REASON_LENGTH, max=limits.MAX_REASON_LENGTH)
APPEAL_TEXT_HELP = _l("At least %(count)d characters.", count=limits.MIN_REASON_LENGTH)


class AppealForm(Form):
    """A bidder's appeal (申诉) of a listing's announced result, during the standstill window."""

    ground = TextAreaField(_l("Ground of your appeal"), description=APPEAL_TEXT_HELP,
                           validators=[Required(), APPEAL_TEXT_LENGTH])
    # The page the form was on, shown again with the form's messages when it is refused.
    page = HiddenField()


class AppealAnswerForm(Form):
    """KA management's answer to an appeal: upheld (the listing is decided again) or rejected."""

    outcome = RadioField(_l("Answer"), choices=options(APPEAL_OUTCOME_LABELS),
                         validators=[Required()])
    # The form checks the length the service asks for, so that an answer with neither its
    # outcome nor enough text is told both at once, not the length only on the next try.
    answer = TextAreaField(_l("Written answer to the appellant"),
                           validators=[Required(), APPEAL_TEXT_LENGTH])
    version = HiddenField()


class CancelForm(Form):
    """Cancelling a listing or a whole round before it takes effect: the reason is recorded.

    The round page also holds the release form's and the early close's reason: an id of its
    own keeps the cancellation's label on its own box."""

    reason = TextAreaField(_l("Reason for the cancellation"), description=APPEAL_TEXT_HELP,
                           validators=[Required(), APPEAL_TEXT_LENGTH], id="cancel-reason")
    version = HiddenField()
