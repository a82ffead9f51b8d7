"""Everything a request carries in, declared once and checked here, for every route.

The JSON API's bodies, queries, headers and path ids are pydantic models: flask-openapi3
validates each request against them and writes `/api/openapi.json` from the same models.
The pages' query strings and small forms use the same models through `query()` and
`form()`; pages that render a form with its errors use the WTForms classes at the end.

A refusal is a DomainError in API.md's shape: `InvalidRequest` naming the field as `param`
(`items[0].quantity`, `Idempotency-Key`) with the message the field declares in its
`Refusal`; some fields declare another error (an id in the path that cannot exist is a
404, like any unknown id; a malformed login is a 401, like a wrong password).
JSON numbers are checked strictly: an integer field takes a JSON integer only (not 1.5,
"1e3" or true), within the range of the database column it ends up in; a number in a query
string, a form or a path is ASCII digits only (`'²'.isdigit()` is true in Python) and is
checked against the same range (`whole_number`, the `id` path converter).

Before any of that, and before the rate limiter, `refuse_hostile_input` looks at every
request once: a body nested deeper than MAX_JSON_DEPTH, or a NUL byte (or an unpaired
surrogate) in a query, form or JSON string, is a 400 naming the field; such a character in
a path id is a 404, like any id that cannot exist. So nothing below ever meets a value the
database cannot store or a JSON parser cannot read without deep recursion.
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Annotated, Any, ClassVar, NoReturn, TypeVar

from flask import request
from flask_openapi3.request import _validate_request
from flask_openapi3.utils import parse_parameters
from flask_wtf import FlaskForm
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from werkzeug.routing import IntegerConverter
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from payments_site.customer_status import HISTORY_FILTERS
from payments_site.errors import DomainError, InvalidRequest, NotFound, Unauthenticated
from payments_site.models import (
    EARLIEST_MOMENT,
    ID_MAX,
    LATEST_MOMENT,
    PAYMENT_STATUSES,
    PaymentStatus,
    RefundReason,
)
from payments_site.models.webhook_event import WEBHOOK_STATUSES
from payments_site.money import InvalidAmount, parse_major_amount
from payments_site.services.accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from payments_site.services.admin_payments import (
    DEFAULT_PAGE_SIZE,
    EXTRA_FILTERS,
    MAX_PAGE_SIZE,
    PaymentFilters,
)
from payments_site.services.payments import HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT
from payments_site.services.pricing import MAX_LINES, MAX_QUANTITY

# Every request model by name (Schema registers its subclasses).
_SCHEMAS: dict[str, type[BaseModel]] = {}
# Every id and amount column is a PostgreSQL `integer`: a larger number names nothing.
INT32_MAX = ID_MAX
INT64_MAX = 2**63 - 1
# Deeper JSON is refused before anything parses it (the API's bodies are 3 levels deep and a
# Stripe event about 8; Python's parser recurses once per level).
MAX_JSON_DEPTH = 32
# The dates a client may filter on (a day later, or in any time zone, stays a datetime).
EARLIEST_DATE = EARLIEST_MOMENT.date()
LATEST_DATE = (LATEST_MOMENT - timedelta(days=1)).date()
ATTEMPT_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
Model = TypeVar("Model", bound=BaseModel)


# --- Refusals: what a field says when it is wrong ------------------------------------------

class Refusal:
    """A field's refusal: its message (or one per pydantic error type, e.g. `too_long`) and
    the error raised. `InvalidRequest` names the field as `param`; NotFound and
    Unauthenticated say nothing about which field it was."""

    def __init__(self, message: str, *, error: type[DomainError] = InvalidRequest,
                 **by_type: str) -> None:
        self.message = message
        self.error = error
        self.by_type = by_type

    def raise_for(self, error_type: str, param: str | None) -> NoReturn:
        message = self.by_type.get(error_type, self.message)
        if self.error is InvalidRequest:
            raise InvalidRequest(message, param=param)
        raise self.error(message)


class Schema(BaseModel):
    """A request part (body, query, header, path or form): strict types, unknown keys ignored
    (a client's `amount` or `status` is never read)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    # Said when the value is not an object at all (an item of a list that is not an object).
    refusal: ClassVar[Refusal | None] = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Known by name, so a ValidationError (which carries its model's name) finds the
        refusals its model declares."""
        super().__pydantic_init_subclass__(**kwargs)
        assert cls.__name__ not in _SCHEMAS, cls
        _SCHEMAS[cls.__name__] = cls


class Body(Schema):
    """A JSON request body: no body at all reads as `{}` (malformed JSON and bodies that are
    not objects are refused before, by `json_object`)."""

    @model_validator(mode="before")
    @classmethod
    def _no_body_is_empty(cls, data: Any) -> Any:
        return {} if data is None else data


def param_of(loc: tuple[int | str, ...]) -> str | None:
    """pydantic's location as API.md's `param`: ('items', 0, 'quantity') → items[0].quantity."""
    param = ""
    for part in loc:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else part)
    return param or None


def _refusal_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> Refusal | None:
    """The refusal declared closest to `loc`: the field's, or for a list's element that is not
    an object, the element model's."""
    found: Refusal | None = None
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            if isinstance(current, type) and issubclass(current, Schema) and current.refusal:
                found = current.refusal
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            break
        info = next((f for name, f in current.model_fields.items()
                     if (f.alias or name) == part), None)
        if info is None:
            break
        found = next((m for m in info.metadata if isinstance(m, Refusal)), None)
        current = _model_inside(info.annotation)
    return found


def _model_inside(annotation: Any) -> Any:
    """The model a field holds, through `list[...]` and `... | None`."""
    for inner in typing.get_args(annotation):
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
        found = _model_inside(inner)
        if found is not None:
            return found
    return annotation if isinstance(annotation, type) else None


def refuse(error: ValidationError, model: type[BaseModel] | None = None) -> NoReturn:
    """Raise the DomainError for the first thing wrong (flask-openapi3's validation error
    callback, and `parse`'s)."""
    first = error.errors(include_url=False, include_context=False)[0]
    loc = tuple(first["loc"])
    param = param_of(loc)
    model = model or _SCHEMAS.get(error.title)
    refusal = _refusal_at(model, loc) if model is not None else None
    if refusal is not None:
        refusal.raise_for(first["type"], param)
    if param is None:
        raise InvalidRequest("The request body must be a JSON object.")
    raise InvalidRequest(f"{param}: {first['msg']}.", param=param)


def parse(model: type[Model], data: Any) -> Model:
    """`data` checked against `model`; the DomainError of its first refusal otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        refuse(error, model)


def query(model: type[Model]) -> Model:
    """The page's query string (first value of each argument) as `model`."""
    return parse(model, request.args.to_dict())


def query_args() -> dict[str, str]:
    """The query string as sent (first value of each argument), to show a form again."""
    return request.args.to_dict()


def header(model: type[Model]) -> Model:
    """The request's headers as `model`."""
    return parse(model, dict(request.headers))


def form(model: type[Model]) -> Model:
    """The posted form (first value of each field) as `model`."""
    return parse(model, request.form.to_dict())


def json_object() -> dict[str, Any]:
    """The request's JSON object ({} without a body); 400 for malformed JSON or anything but
    an object."""
    data = request.get_json(silent=True)
    if data is None:
        if request.get_data(cache=True).strip():
            raise InvalidRequest("The request body is not valid JSON.")
        return {}
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def login_email() -> str:
    """The email a login (form) or token request (JSON) tries, as sent; "" if none. Read
    before the request is checked: the per-account rate limit keys on it."""
    if request.is_json:
        data = request.get_json(silent=True)
        email = data.get("email") if isinstance(data, dict) else None
        return email if isinstance(email, str) else ""
    return request.form.get("email", "")


def cookie(name: str) -> str:
    """A cookie's value as sent ("" if none)."""
    return request.cookies.get(name, "")


def incoming_request_id() -> str | None:
    """The `X-Request-ID` the request came with, as sent (payments_site.tracing decides
    whether to take it)."""
    return request.headers.get("X-Request-ID")


def metrics_credentials() -> str | None:
    """The Bearer credential of a scrape of /metrics (None without one)."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential.strip() or None if scheme.lower() == "bearer" else None


def raw_body() -> bytes:
    """The body's exact bytes (a webhook's signature covers them)."""
    return request.get_data(cache=False)


# --- The edge guard: shapes nothing below should ever meet -------------------------------------

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# A JSON string (escapes included) and everything that is not a bracket, for the depth scan.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")
# What no database text column takes: NUL (PostgreSQL refuses it) and unpaired surrogates
# (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class RowIdConverter(IntegerConverter):
    """`<id:name>` in a route: 1 to ID_MAX in ASCII digits, else the route does not match
    (404), like any id that names no row."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        super().__init__(map, min=1, max=ID_MAX)


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `body`, read as JSON, nests arrays/objects more than `limit` deep; found
    without parsing it (strings removed, then the brackets counted)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return False
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPENING else -1
        if depth > limit:
            return True
    return False


def storable(text: str) -> bool:
    """False for text with a NUL or an unpaired surrogate, which no text column stores."""
    return _UNSTORABLE.search(text) is None


def _unstorable_in_json(data: Any) -> Iterator[str | None]:
    """The `param` of each JSON string (key or value) that is not storable; None for the
    body itself. Iterative: the depth was checked, but nothing here needs recursion."""
    pending: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, str):
            if not storable(value):
                yield param_of(loc)
        elif isinstance(value, dict):
            for key, item in value.items():
                if not storable(key):
                    yield param_of((*loc, key))
                pending.append(((*loc, key), item))
        elif isinstance(value, list):
            pending.extend(((*loc, index), item) for index, item in enumerate(value))


def _refuse_unstorable(param: str | None) -> NoReturn:
    shown = (param or "body").encode("unicode_escape").decode("ascii")
    raise InvalidRequest(f"{shown} contains a character that is not allowed (a NUL byte or "
                         "an unpaired surrogate).", param=shown)


def refuse_hostile_input() -> None:
    """Every request, first (ahead of the rate limiter's key functions and of any view):

    - a path value with a NUL → 404 (no such id);
    - a query or form field (name or value) with a NUL → 400 naming it;
    - a body nested deeper than MAX_JSON_DEPTH → 400, before anything parses it;
    - a JSON body with a NUL or unpaired surrogate in any string → 400 naming it.
    """
    if any(isinstance(value, str) and not storable(value)
           for value in (request.view_args or {}).values()):
        raise NotFound()
    fields = [request.args]
    if request.mimetype in FORM_TYPES:
        fields.append(request.form)
    for values in fields:
        for name, value in values.items(multi=True):
            if not storable(name):
                _refuse_unstorable(name)
            if not storable(value):
                _refuse_unstorable(name)
    if request.mimetype in FORM_TYPES:
        return
    body = request.get_data(cache=True)
    if not body:
        return
    if json_too_deep(body):
        raise InvalidRequest(f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} "
                             "levels).")
    try:
        data = json.loads(body)
    except ValueError:
        return  # not JSON: the route's own parsing answers it
    for param in _unstorable_in_json(data):
        _refuse_unstorable(param)


View = TypeVar("View", bound=Callable[..., Any])


def validated(view: View) -> View:
    """Check the view's declared `body`, `query`, `header` and `path` (flask-openapi3) when
    the view itself runs: below the decorators that check who is calling (an anonymous call
    is a 401 before any 400) and inside an Idempotency-Key's claim (a 400 is stored and
    replayed like any answer).

    The declared models are read once, here. (flask-openapi3's own `validate_request` reads
    them again at every request, and builds their OpenAPI schemas each time: the largest part
    of a JSON request's own time.) Validation itself, and its 422 answer, are flask-openapi3's
    (`_validate_request`, the function its decorator calls).
    """
    header_model, cookie, path, query, form, body, raw = parse_parameters(view, doc_ui=False)
    takes_body = body is not None
    # Tells flask-openapi3 not to validate this view a second time when it is registered.
    setattr(view, "__delay_validate_request__", True)  # noqa: B010

    @functools.wraps(view)
    def check(*args: Any, **kwargs: Any) -> Any:
        if takes_body:
            json_object()
        # The headers are checked here (flask-openapi3 would build the model's JSON schema
        # for every request to read them); the rest by flask-openapi3.
        arguments = _validate_request(None, cookie, path, query, form, body,
                                      typing.cast(Any, raw),
                                      path_kwargs=kwargs)
        if header_model is not None:
            arguments["header"] = header(header_model)
        arguments.update(kwargs)
        return view(*args, **arguments)
    return typing.cast(View, check)


# --- Shared field types ------------------------------------------------------------------------
# (pydantic runs a field's BeforeValidators last first: `_stripped` listed after
# `_whole_number` strips before the digits are read.)

def _whole_number(value: Any) -> Any:
    """A number in a query string or form: ASCII digits only ("+5", " 5", "5.0" refused)."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ValueError("not a whole number")
        return int(value)
    return value


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _printable(value: str | None) -> str | None:
    if value is not None and not value.isprintable():
        raise ValueError("not printable")
    return value


def _iso_date(value: Any) -> Any:
    return date.fromisoformat(value.strip()) if isinstance(value, str) else value


def _date_in_range(value: date | None) -> date | None:
    if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError("out of range")
    return value


PaymentId = Annotated[str, Field(min_length=1, max_length=64),
                      Refusal("No such payment.", error=NotFound)]
StripePaymentMethodId = Annotated[str, Field(pattern=r"^pm_[A-Za-z0-9_]{1,250}$")]
StripeSetupIntentId = Annotated[str, Field(pattern=r"^seti_[A-Za-z0-9_]{1,250}$")]
CARD_ID_REFUSAL = Refusal("payment_method_id must be a Stripe id.")


# --- The JSON API ------------------------------------------------------------------------------

LOGIN_REFUSED = Refusal("Invalid email or password.", error=Unauthenticated)


class TokenRequest(Body):
    email: Annotated[str, LOGIN_REFUSED]
    password: Annotated[str, LOGIN_REFUSED]


class CartItem(Schema):
    refusal = Refusal("Each item must be an object.")
    product_id: Annotated[int, Field(ge=1, le=INT32_MAX),
                          Refusal("product_id must be a product id.")]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), Refusal(
        f"quantity must be a whole number from 1 to {MAX_QUANTITY}.")]


class ProcessPaymentRequest(Body):
    """Amount and currency come from the catalog: a client's `amount` is ignored."""

    items: Annotated[list[CartItem], Field(min_length=1, max_length=MAX_LINES), Refusal(
        "items must be a non-empty list.",
        too_long=f"A cart holds at most {MAX_LINES} different products.")]
    payment_method_id: Annotated[
        str | None, Field(min_length=1, description="One of the caller's saved cards"),
        Refusal("payment_method_id must be a saved card's id.")] = None
    save_payment_method: Annotated[
        bool, Refusal("save_payment_method must be true or false.")] = False
    checkout_attempt: Annotated[str | None, Field(
        pattern=ATTEMPT_PATTERN,
        description="The checkout page's attempt token: every submit with the same token "
                    "and cart is the same payment (double clicks, retries after a decline); "
                    "a new token is a new purchase"), Refusal(
        "checkout_attempt must be 16 to 64 letters, digits, '-' or '_'.")] = None

    def cart(self) -> list[tuple[int, int]]:
        return [(item.product_id, item.quantity) for item in self.items]


class IdempotencyKeyHeader(Schema):
    key: Annotated[str | None, Field(alias="Idempotency-Key", min_length=1, max_length=255),
                   AfterValidator(_printable),
                   Refusal("Idempotency-Key must be 1 to 255 printable characters.")] = None


class HistoryQuery(Schema):
    limit: Annotated[int, Field(ge=1, le=HISTORY_MAX_LIMIT), BeforeValidator(_whole_number),
                     Refusal(f"limit must be an integer from 1 to {HISTORY_MAX_LIMIT}.")
                     ] = HISTORY_DEFAULT_LIMIT
    cursor: Annotated[str | None, Refusal("The cursor is invalid.")] = None
    status: Annotated[PaymentStatus | None, Refusal(
        "status must be one of " + ", ".join(PAYMENT_STATUSES) + ".")] = None


class PaymentPath(Schema):
    payment_id: PaymentId


class RefundRequest(Body):
    payment_id: Annotated[str, Field(min_length=1),
                          Refusal("payment_id must be a payment id such as pay_….")]
    # Any whole amount up to 64 bits is compared with what remains refundable (API.md: 400
    # `amount_too_large`); it never reaches a column, so the 32-bit bound does not apply.
    amount: Annotated[int | None, Field(
        ge=1, le=INT64_MAX, description="Minor units; absent: all that remains"), Refusal(
        "amount must be an integer of the currency's minor units.",
        greater_than_equal="amount must be positive.")] = None
    reason: Annotated[RefundReason | None, Refusal(
        "reason must be one of requested_by_customer, duplicate, fraudulent.")] = None
    currency: Annotated[str | None, Field(description="The payment's currency, if sent"),
                        Refusal("currency must be the payment's currency code.")] = None


class SaveCardRequest(Body):
    """Exactly one of the two ids."""

    setup_intent_id: Annotated[StripeSetupIntentId | None,
                               Refusal("setup_intent_id must be a Stripe id.")] = None
    payment_method_id: Annotated[StripePaymentMethodId | None, CARD_ID_REFUSAL] = None
    make_default: Annotated[bool | None, Refusal("make_default must be true or false.")] = None

    @model_validator(mode="after")
    def _exactly_one_id(self) -> SaveCardRequest:
        sent = {"setup_intent_id", "payment_method_id"} & self.model_fields_set
        if len(sent) != 1:
            raise InvalidRequest("Send exactly one of setup_intent_id or payment_method_id.",
                                 param="setup_intent_id")
        (name,) = sent
        if getattr(self, name) is None:
            raise InvalidRequest(f"{name} must be a Stripe id.", param=name)
        return self


class CardRequest(Body):
    payment_method_id: Annotated[StripePaymentMethodId, CARD_ID_REFUSAL]


class CardToDeleteBody(Body):
    model_config = ConfigDict(json_schema_extra={"description": "Or ?payment_method_id="},
                              openapi_extra={"required": False})  # type: ignore[typeddict-unknown-key]

    payment_method_id: Annotated[StripePaymentMethodId | None, CARD_ID_REFUSAL] = None


class CardToDeleteQuery(Schema):
    payment_method_id: Annotated[StripePaymentMethodId | None, CARD_ID_REFUSAL] = None

    def card_id(self, body: CardToDeleteBody) -> str:
        """The body's id, else the query's; 400 when neither names a card."""
        if "payment_method_id" in body.model_fields_set:
            chosen = body.payment_method_id
        else:
            chosen = self.payment_method_id
        if chosen is None:
            raise InvalidRequest(CARD_ID_REFUSAL.message, param="payment_method_id")
        return chosen


class StripeSignatureHeader(Schema):
    signature: Annotated[str, Field(alias="Stripe-Signature"), Refusal(
        "The Stripe-Signature header is missing or invalid.")]


# --- The pages' query strings and small forms ------------------------------------------------

FormProductId = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(_whole_number),
                          BeforeValidator(_stripped),
                          Refusal("No such product.", error=NotFound)]
QUANTITY_REFUSAL = Refusal(f"Choose a quantity from 1 to {MAX_QUANTITY}.")


def _one_if_absent(value: Any) -> Any:
    """No quantity sent (or an empty one) means one; spaces alone are refused."""
    return "1" if value is None or value == "" else value


class CartLineForm(Schema):
    """The product a cart form is about (an unknown one is a 404)."""

    product_id: FormProductId


class AddToCartForm(Schema):
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), BeforeValidator(_whole_number),
                        BeforeValidator(_stripped), BeforeValidator(_one_if_absent),
                        QUANTITY_REFUSAL] = 1
    next: str = ""


class UpdateCartForm(Schema):
    """A line's new quantity; 0, or the remove button (`action=remove`), removes it."""

    quantity: Annotated[int, Field(ge=0, le=MAX_QUANTITY), BeforeValidator(_whole_number),
                        BeforeValidator(_stripped), BeforeValidator(_one_if_absent),
                        QUANTITY_REFUSAL] = 1

    @model_validator(mode="before")
    @classmethod
    def _remove_is_zero(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("action") == "remove":
            return {**data, "quantity": "0"}
        return data


class NextPageQuery(Schema):
    """Where to go after signing in (checked by security.safe_next)."""

    next: str | None = None


class CheckoutReturnQuery(Schema):
    """Stripe's return_url: our payment and/or its PaymentIntent."""

    payment: Annotated[str | None, BeforeValidator(_blank_is_none)] = None
    payment_intent: Annotated[str | None, BeforeValidator(_blank_is_none)] = None


class CardsPageQuery(Schema):
    """The cards page; Stripe returns to it with the SetupIntent after 3-D Secure."""

    setup_intent: Annotated[str | None, BeforeValidator(_blank_is_none)] = None
    saved: str | None = None


class AccountPaymentsQuery(Schema):
    """The history page: `status` is one of the page's filters or any API status."""

    status: Annotated[str | None, BeforeValidator(_blank_is_none)] = None
    cursor: Annotated[str | None, BeforeValidator(_blank_is_none)] = None

    @model_validator(mode="after")
    def _known_status(self) -> AccountPaymentsQuery:
        if self.status is not None and self.status not in PAYMENT_STATUSES and \
                all(f.value != self.status for f in HISTORY_FILTERS):
            raise InvalidRequest("There is no such status to show: pick one from the list.",
                                 param="status")
        return self

    def statuses(self) -> tuple[str, ...] | None:
        """The payment statuses shown (a filter may cover several)."""
        chosen = next((f for f in HISTORY_FILTERS if f.value == self.status), None)
        if chosen is not None:
            return tuple(chosen.statuses)
        return (self.status,) if self.status else None


def _search_text(value: Any) -> Any:
    """What the admin typed (an email, pay_…, pi_…), trimmed to an email's longest."""
    return value.strip()[:254] if isinstance(value, str) else value


def _admin_status_filter(value: str) -> str:
    if value not in ("", *PAYMENT_STATUSES, *EXTRA_FILTERS):
        raise ValueError("not one of the status filters")
    return value


def _default_page_size(value: Any) -> Any:
    return (value.strip() or str(DEFAULT_PAGE_SIZE)) if isinstance(value, str) else value


def _date_refusal(name: str) -> Refusal:
    return Refusal(f"'{name}' must be a date such as 2025-01-31, from {EARLIEST_DATE} to "
                   f"{LATEST_DATE}.")


class AdminPaymentsQuery(Schema):
    """The admin's payment search; `after`/`before` are the paging links' cursors."""

    q: Annotated[str, BeforeValidator(_search_text)] = ""
    status: Annotated[str, BeforeValidator(_stripped), AfterValidator(_admin_status_filter),
                      Refusal("Unknown status filter.")] = ""
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE), BeforeValidator(_whole_number),
                     BeforeValidator(_default_page_size),
                     Refusal(f"limit must be 1 to {MAX_PAGE_SIZE}.")] = DEFAULT_PAGE_SIZE
    date_from: Annotated[date | None, Field(alias="from"), BeforeValidator(_iso_date),
                         BeforeValidator(_blank_is_none), AfterValidator(_date_in_range),
                         _date_refusal("from")] = None
    date_to: Annotated[date | None, Field(alias="to"), BeforeValidator(_iso_date),
                       BeforeValidator(_blank_is_none), AfterValidator(_date_in_range),
                       _date_refusal("to")] = None
    after: Annotated[str | None, BeforeValidator(_blank_is_none)] = None
    before: Annotated[str | None, BeforeValidator(_blank_is_none)] = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> AdminPaymentsQuery:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidRequest("The 'from' date is after the 'to' date.", param="from")
        return self

    def filters(self) -> PaymentFilters:
        return PaymentFilters(query=self.q, status=self.status, date_from=self.date_from,
                              date_to=self.date_to, limit=self.limit)


def _lenient_int(value: Any) -> Any:
    """A page number or row id from a link: anything but digits (or past any row id) reads
    as absent."""
    if isinstance(value, str):
        number = _whole_number(value) if value.isascii() and value.isdigit() else None
        return number if number is not None and number <= ID_MAX else None
    return value


class WebhookEventsQuery(Schema):
    """The admin's webhook log: an unknown status shows every event."""

    status: Annotated[str | None, BeforeValidator(
        lambda v: v if v in WEBHOOK_STATUSES else None)] = None
    before: Annotated[int | None, BeforeValidator(_lenient_int)] = None


class WebhookReplayForm(Schema):
    """The log's filter to return to after a replay."""

    status: Annotated[str | None, BeforeValidator(_blank_is_none)] = None


class ReceiptsQuery(Schema):
    page: Annotated[int, BeforeValidator(lambda v: max(_lenient_int(v) or 1, 1)
                                         if isinstance(v, str) else v)] = 1


# --- Forms the pages render (Flask-WTF: CSRF comes with every one) ----------------------------

class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired()])
    submit = SubmitField("Log in")


class RegisterForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH,
                               message=f"Use at least {MIN_PASSWORD_LENGTH} characters.")])
    confirm = PasswordField("Repeat password", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match.")])
    submit = SubmitField("Create account")


def _new_password_fields(label: str = "New password") -> tuple[PasswordField, PasswordField]:
    return (PasswordField(label, validators=[
                DataRequired("Enter a new password."),
                Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH,
                       message=f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
                               "characters.")]),
            PasswordField("Repeat the new password", validators=[
                DataRequired("Repeat the new password."),
                EqualTo("password", message="The passwords do not match.")]))


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email address."),
                                            Email("Enter a valid email address."),
                                            Length(max=254)])


class ResetPasswordForm(FlaskForm):
    password, confirm = _new_password_fields()


class NameForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired("Enter your name."),
                                                Length(max=120)])


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[
        DataRequired("Enter your current password.")])
    password, confirm = _new_password_fields()


class EmailChangeForm(FlaskForm):
    # Ids of their own: the settings page shows this form beside the password form.
    email = EmailField("New email address", id="new_email", validators=[
        DataRequired("Enter the new address."), Email("Enter a valid email address."),
        Length(max=254)])
    current_password = PasswordField("Current password", id="email_current_password",
                                     validators=[DataRequired("Enter your current password.")])


class ConfirmForm(FlaskForm):
    """A button that carries only the CSRF token (confirm a link, sign out everywhere)."""


REFUND_REASON_CHOICES: list[tuple[str, str]] = [
    ("", "Choose a reason…"), ("requested_by_customer", "Requested by the customer"),
    ("duplicate", "Duplicate payment"), ("fraudulent", "Fraudulent payment")]


class RefundForm(FlaskForm):
    """The admin's refund form: an amount in major units ("12.50") and a reason."""

    amount = StringField("Amount to refund", validators=[
        DataRequired("Enter the amount to refund."), Length(max=32)])
    reason = SelectField("Reason", choices=REFUND_REASON_CHOICES,
                         validators=[DataRequired("Choose a reason for the refund.")])
    # "yes" only on the confirmation step's form; form_key makes a double click harmless.
    confirm = HiddenField()
    form_key = HiddenField(validators=[Length(max=64)])

    def minor_units(self, currency: str) -> int | None:
        """The amount in the currency's minor units, or None with the field's error set."""
        try:
            return parse_major_amount(self.amount.data or "", currency)
        except InvalidAmount as error:
            self.amount.errors = [str(error)]
            return None

    def refund_reason(self) -> RefundReason:
        """The chosen reason (the select's choices are the only values it accepts)."""
        return typing.cast(RefundReason, self.reason.data)

