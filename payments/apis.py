"""Merchant API: create deposits and withdrawals, read transactions (CONTRACT §1)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.currencies import is_currency
from core.errors import NotFound, ValidationFailed
from core.pagination import PAGE_PARAMETERS, Pagination
from core.schema import AUTHENTICATED_ERRORS, ERROR_RESPONSE, not_blank_line_pattern, stripped_text_pattern

from .auth import client_of
from .methods import PaymentMethod, method_input_errors
from .models import EventType, RefundFailureReason, RefundStatus, Transaction, TransactionStatus, TransactionType
from .money import AmountError, format_amount, parse_amount
from .refunds import refund_create
from .representations import (
    attempt_representation,
    event_representation,
    refund_representation,
    transaction_representation,
)
from .returnurl import return_url_problem
from .schema import (
    CUSTOMER_ID_MAX_LENGTH,
    DETAIL_MAX_LENGTH,
    LOCALE_MAX_LENGTH,
    LOCALE_PATTERN,
    MAX_DETAIL_KEYS,
    MAX_METADATA_BYTES,
    RETURN_URL_MAX_LENGTH,
    SAVED_METHOD_ID_MAX_LENGTH,
    DepositCreate,
    DepositCreateXml,
    RefundCreate,
    RefundCreateXml,
    TransactionCreate,
    TransactionCreateXml,
    WithdrawalCreate,
    WithdrawalCreateXml,
)
from .selectors import (
    event_feed,
    event_get,
    refund_get,
    transaction_get,
    transaction_list,
    transaction_masked_details,
)
from .services import TransactionInput, transaction_create


class StrictCharField(serializers.CharField):
    """A string, and only a string: numbers and booleans are refused, not converted."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false: JSON's booleans, or their text in XML; not DRF's "1", "yes", "on"...."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if self.context.get("xml") and data in ("true", "false"):
            return bool(data == "true")
        raise serializers.ValidationError("Must be true or false.")


class CodeField(StrictCharField):
    """An ISO code as the standard writes it: `length` upper-case letters A to Z, nothing around them."""

    def __init__(self, *, length: int, **kwargs: Any) -> None:
        pattern = RegexValidator(rf"^[A-Z]{{{length}}}\Z", f"Must be {length} upper-case letters A to Z.")
        super().__init__(trim_whitespace=False, validators=[pattern], **kwargs)


class AmountField(serializers.Field):  # its schema: payments/schema.py
    """Kept raw here; checked against the currency's minor units in `validate`."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, (bool, float)) or not isinstance(data, (str, int, Decimal)):
            raise serializers.ValidationError('Must be a decimal string such as "25.00".')
        return data

    def to_representation(self, value: Any) -> str:
        return str(value)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "type": "string",
            "pattern": stripped_text_pattern(min_length=0, max_length=DETAIL_MAX_LENGTH),
        },
        "maxProperties": MAX_DETAIL_KEYS,
    }
)
class PaymentDetailsField(serializers.DictField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": True})
class MetadataField(serializers.JSONField):
    def __init__(self, **kwargs: Any) -> None:
        # A JSON number with a fraction arrives as a Decimal (core/parsers.py), which the default
        # encoder of DRF's check refuses as "not valid JSON".
        super().__init__(encoder=DjangoJSONEncoder, **kwargs)


def _json_object(value: Any, *, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"{field} must be an object.")
    return value


class QueryFilters(serializers.Serializer):
    """Query filters: DRF reads `?status=` as no filter at all, but the schema's filters have no empty value."""

    def to_internal_value(self, data: Any) -> Any:
        blank = sorted(name for name in data if name in self.fields and data.get(name) == "")
        if blank:
            raise serializers.ValidationError({name: ["May not be blank."] for name in blank})
        return super().to_internal_value(data)


class TransactionCreateInput(serializers.Serializer):
    customer_id = StrictCharField(max_length=CUSTOMER_ID_MAX_LENGTH)
    country = CodeField(length=2, help_text="ISO 3166-1 alpha-2")
    amount = AmountField(help_text='A decimal string, e.g. "25.00"; a JSON number is accepted.')
    currency = CodeField(length=3, help_text="ISO 4217")
    payment_details = PaymentDetailsField(
        child=StrictCharField(max_length=DETAIL_MAX_LENGTH, allow_blank=True),
        required=False,
        default=dict,
        help_text="Sensitive: encrypted at rest, returned masked. Security codes, PINs and track data "
        "(cvv, cvc, pin, track2, ...) are never returned and are deleted once the transaction is final.",
    )
    metadata = MetadataField(required=False, default=dict, help_text="A small free-form object (at most 4 KiB).")
    payment_method = serializers.ChoiceField(
        choices=PaymentMethod.choices, required=False, help_text="Without it, payment_details are free-form."
    )
    payment_method_id = StrictCharField(
        max_length=SAVED_METHOD_ID_MAX_LENGTH, required=False, help_text="A saved method (pm_…) instead of details."
    )
    save_payment_method = StrictBooleanField(
        required=False, help_text="Keep the details (without a security code) once the deposit completes."
    )

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be an object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def validate_currency(self, value: str) -> str:
        if not is_currency(value):
            raise serializers.ValidationError("Not an ISO 4217 currency code.")
        return value

    def validate_payment_details(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_DETAIL_KEYS:
            raise serializers.ValidationError(f"At most {MAX_DETAIL_KEYS} entries.")
        return value

    def validate_metadata(self, value: Any) -> dict[str, Any]:
        value = _json_object(value, field="metadata")
        if len(json.dumps(value, default=str)) > MAX_METADATA_BYTES:
            raise serializers.ValidationError(f"At most {MAX_METADATA_BYTES} bytes.")
        # JSON numbers arrive as Decimal; keep them as their exact text.
        return json.loads(json.dumps(value, default=str))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["amount"] = parse_amount(
                attrs["amount"], currency=attrs["currency"], maximum=Decimal(settings.PAYGATE_MAX_AMOUNT)
            )
        except AmountError as exc:
            raise serializers.ValidationError({"amount": [str(exc)]}) from None
        errors = method_input_errors(
            transaction_type=self.context.get("transaction_type", ""),
            method=attrs.get("payment_method", ""),
            details=attrs["payment_details"],
            details_given=isinstance(self.initial_data, dict) and "payment_details" in self.initial_data,
            today=timezone.now().date(),
            saved_method_given="payment_method_id" in attrs,
            save=attrs.get("save_payment_method", False),
            return_url_given=bool(attrs.get("return_url")),
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DepositCreateInput(TransactionCreateInput):
    """A deposit's body: a withdrawal's, plus where the customer goes back to and their language (§11)."""

    return_url = StrictCharField(
        max_length=RETURN_URL_MAX_LENGTH,
        required=False,
        trim_whitespace=False,
        help_text="Absolute http(s) URL (https only in production) where the customer's browser goes at the end.",
    )
    locale = StrictCharField(
        max_length=LOCALE_MAX_LENGTH,
        required=False,
        trim_whitespace=False,
        validators=[RegexValidator(LOCALE_PATTERN[:-1] + r"\Z", "Must be a BCP 47 language tag such as de-DE.")],
        help_text="The pay page's language (BCP 47), e.g. de-DE.",
    )

    def validate_return_url(self, value: str) -> str:
        problem = return_url_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "description": "What the customer must do, while the deposit is not final (CONTRACT §11); else null.",
        "properties": {
            "type": {"type": "string", "enum": ["redirect", "display_code"]},
            "url": {"type": "string", "format": "uri", "description": "Paygate's pay page for this transaction."},
            "code": {"type": "string", "description": "display_code only: the code to pay."},
            "expires_at": {"type": "string", "format": "date-time"},
        },
        "required": ["type", "url", "expires_at"],
    }
)
class NextActionField(serializers.JSONField):
    pass


class AttemptOutput(serializers.Serializer):
    reference = serializers.CharField(source="pk")
    gateway = serializers.CharField(source="gateway.code")
    outcome = serializers.CharField()
    error = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_error(self, attempt: Any) -> str | None:
        return attempt.error or None

    def to_representation(self, attempt: Any) -> dict[str, Any]:
        # Written out (payments.representations): DRF would deep-copy every declared field per instance.
        return attempt_representation(attempt)


class RefundOutput(serializers.Serializer):
    id = serializers.UUIDField(help_text="Also the reference sent to the gateway.")
    transaction_id = serializers.UUIDField()
    amount = serializers.SerializerMethodField(help_text="With the currency's minor units.")
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=RefundStatus.choices)
    failure_reason = serializers.ChoiceField(choices=RefundFailureReason.choices, allow_null=True)
    reason = serializers.CharField(help_text="The merchant's reason, as given.")
    gateway = serializers.CharField(source="gateway.code", help_text="The gateway that completed the deposit.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_amount(self, refund: Any) -> str:
        return format_amount(refund.amount, refund.currency)

    def to_representation(self, refund: Any) -> dict[str, Any]:
        # Written out, like AttemptOutput's: the declared fields describe it in the schema.
        return refund_representation(refund)


class TransactionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=TransactionType.choices)
    status = serializers.ChoiceField(choices=TransactionStatus.choices)
    amount = serializers.SerializerMethodField()
    currency = serializers.CharField()
    country = serializers.CharField(source="country_id")
    customer_id = serializers.CharField(source="customer.reference")
    gateway = serializers.SerializerMethodField()
    gateway_reference = serializers.SerializerMethodField()
    failure_reason = serializers.CharField(allow_null=True)
    next_action = NextActionField(allow_null=True)
    payment_method = serializers.SerializerMethodField(help_text="null when the details are free-form.")
    payment_details = serializers.SerializerMethodField()
    metadata = serializers.JSONField()
    attempts = AttemptOutput(many=True)
    refunded_amount = serializers.SerializerMethodField(help_text="The sum of the succeeded refunds.")
    refunds = RefundOutput(many=True, help_text="Every refund, newest first.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_amount(self, txn: Transaction) -> str:
        return format_amount(txn.amount, txn.currency)

    def get_gateway(self, txn: Transaction) -> str | None:
        return txn.gateway.code if txn.gateway else None

    def get_refunded_amount(self, txn: Transaction) -> str:
        refunded = sum((r.amount for r in txn.refunds.all() if r.status == RefundStatus.SUCCEEDED), start=Decimal(0))
        return format_amount(refunded, txn.currency)

    def get_gateway_reference(self, txn: Transaction) -> str | None:
        return txn.gateway_reference or None

    @extend_schema_field(serializers.ChoiceField(choices=PaymentMethod.choices, allow_null=True))
    def get_payment_method(self, txn: Transaction) -> str | None:
        return txn.payment_method or None

    def get_payment_details(self, txn: Transaction) -> dict[str, str]:
        return transaction_masked_details(txn)

    def to_representation(self, txn: Transaction) -> dict[str, Any]:
        # Written out, like AttemptOutput's: the declared fields describe it in the schema.
        return transaction_representation(txn)


_IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": not_blank_line_pattern()},
    OpenApiParameter.HEADER,
    required=False,
    description="At most 255 characters. The same key with the same body replays the original answer; "
    "with a different body it answers 409.",
)

_CREATE_EXAMPLE = OpenApiExample(
    "Deposit",
    value={
        "customer_id": "cus_42",
        "country": "DE",
        "amount": "25.00",
        "currency": "EUR",
        "payment_details": {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"},
        "metadata": {"order": "A-1001"},
    },
    request_only=True,
)


_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f]")


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key.strip() or len(key) > 255:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters.", fields={"Idempotency-Key": ["Invalid length."]}
        )
    if _CONTROL_CHARACTERS.search(key):
        raise ValidationFailed(
            "Idempotency-Key may not contain control characters.",
            fields={"Idempotency-Key": ["Control characters are not allowed."]},
        )
    return key


class TransactionCreateApi(APIView):
    transaction_type: str = ""
    xml_root_name = "transaction"
    input_serializer: type[TransactionCreateInput] = TransactionCreateInput

    def post(self, request: Request) -> Response:
        xml = (request.content_type or "").split(";")[0].strip() in ("application/xml", "text/xml")
        serializer = self.input_serializer(
            data=request.data, context={"transaction_type": self.transaction_type, "xml": xml}
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = transaction_create(
            client=client_of(request),
            data=TransactionInput(type=self.transaction_type, **data),
            idempotency_key=_idempotency_key(request),
        )
        headers = {"Location": f"/api/v1/transactions/{result.transaction.pk}"}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        body = result.shown if result.shown is not None else TransactionOutput(result.transaction).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


# TransactionCreateInput validates; these describe what it accepts, JSON and XML (payments/schema.py).
_CREATE_REQUEST = {
    "application/json": TransactionCreate,
    "application/xml": TransactionCreateXml,
    "text/xml": TransactionCreateXml,
}

_DEPOSIT_REQUEST = {
    "application/json": DepositCreate,
    "application/xml": DepositCreateXml,
    "text/xml": DepositCreateXml,
}

_CREATE_RESPONSES = {
    202: TransactionOutput,
    400: OpenApiResponse(ERROR_RESPONSE, description="Validation error or unparseable body"),
    **AUTHENTICATED_ERRORS,
    409: OpenApiResponse(ERROR_RESPONSE, description="Idempotency-Key reused with a different body"),
    413: OpenApiResponse(ERROR_RESPONSE, description="Body too large"),
    415: OpenApiResponse(ERROR_RESPONSE, description="Unsupported media type"),
    422: OpenApiResponse(ERROR_RESPONSE, description="no_route: no active route for country, currency, type"),
}


class DepositCreateApi(TransactionCreateApi):
    transaction_type = TransactionType.DEPOSIT
    input_serializer = DepositCreateInput

    @extend_schema(
        operation_id="deposit_create",
        request=_DEPOSIT_REQUEST,
        responses=_CREATE_RESPONSES,
        parameters=[_IDEMPOTENCY_HEADER],
        examples=[_CREATE_EXAMPLE],
        tags=["transactions"],
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class WithdrawalCreateApi(TransactionCreateApi):
    transaction_type = TransactionType.WITHDRAWAL

    @extend_schema(
        operation_id="withdrawal_create",
        request={
            "application/json": WithdrawalCreate,
            "application/xml": WithdrawalCreateXml,
            "text/xml": WithdrawalCreateXml,
        },
        responses=_CREATE_RESPONSES,
        parameters=[_IDEMPOTENCY_HEADER],
        examples=[_CREATE_EXAMPLE],
        tags=["transactions"],
    )
    def post(self, request: Request) -> Response:
        return super().post(request)


class TransactionDetailApi(APIView):
    xml_root_name = "transaction"

    @extend_schema(
        operation_id="transaction_retrieve",
        responses={
            200: TransactionOutput,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such transaction"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["transactions"],
    )
    def get(self, request: Request, transaction_id: str) -> Response:
        txn = transaction_get(client=client_of(request), transaction_id=transaction_id)
        if txn is None:
            raise NotFound("No such transaction.")
        return Response(TransactionOutput(txn).data)


class TransactionListApi(APIView):
    xml_root_name = "transactions"

    class FilterInput(QueryFilters):
        status = serializers.ChoiceField(choices=TransactionStatus.choices, required=False)
        type = serializers.ChoiceField(choices=TransactionType.choices, required=False)
        country = CodeField(length=2, required=False)
        gateway = serializers.SlugField(max_length=50, required=False, trim_whitespace=False)

    @extend_schema(
        operation_id="transaction_list",
        parameters=[FilterInput, *PAGE_PARAMETERS],
        responses={
            200: inline_serializer(
                name="PaginatedTransactionList",
                fields={
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": TransactionOutput(many=True),
                },
            ),
            400: OpenApiResponse(ERROR_RESPONSE, description="Unknown or invalid filter"),
            404: OpenApiResponse(ERROR_RESPONSE, description="No such page"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["transactions"],
    )
    def get(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"status", "type", "country", "gateway", "page", "page_size"})
        if unknown:
            raise ValidationFailed(
                "Unknown query parameter.", fields={name: ["Unknown parameter."] for name in unknown}
            )
        filters = self.FilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = transaction_list(client=client_of(request), filters=filters.validated_data)
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(TransactionOutput(page, many=True).data)


# --- Events (CONTRACT §8) ------------------------------------------------------------------


class EventOutput(serializers.Serializer):
    id = serializers.CharField(help_text="`evt_` and 32 hex digits.")
    type = serializers.ChoiceField(choices=EventType.choices)
    created_at = serializers.DateTimeField()
    data = inline_serializer(  # type: ignore[assignment]  # a nested serializer named `data`, as the contract has it
        name="EventData",
        fields={
            "object": PolymorphicProxySerializer(
                component_name="EventObject",
                serializers=[TransactionOutput, RefundOutput],
                resource_type_field_name=None,
                help_text="The transaction (transaction.*) or the refund (refund.*) right after the change.",
            )
        },
    )

    def to_representation(self, event: Any) -> dict[str, Any]:
        return event_representation(event)


_EVENT_ID_PATTERN = "^evt_[0-9a-f]{32}$"


class EventListApi(APIView):
    xml_root_name = "events"

    class FilterInput(QueryFilters):
        after = serializers.RegexField(
            _EVENT_ID_PATTERN, required=False, help_text="Events after this one (an id from this feed)."
        )
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
        type = serializers.ChoiceField(choices=EventType.choices, required=False)
        transaction = serializers.UUIDField(required=False, help_text="Only this transaction's events.")

    @extend_schema(
        operation_id="event_list",
        parameters=[FilterInput],
        responses={
            200: inline_serializer(
                name="EventPage",
                fields={
                    "results": EventOutput(many=True),
                    "has_more": serializers.BooleanField(
                        help_text="More events are visible now: ask again with `after` = the last id."
                    ),
                    "next": serializers.URLField(allow_null=True, help_text="The next page's URL, if `has_more`."),
                },
            ),
            400: OpenApiResponse(ERROR_RESPONSE, description="Unknown or invalid filter"),
            404: OpenApiResponse(ERROR_RESPONSE, description="`after` names no event of this client"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["events"],
        description="The client's events, oldest first. Paging forward with `after` never skips an event, "
        "even when concurrent writers commit out of order: an event appears once every older writer has finished.",
    )
    def get(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - set(self.FilterInput().fields))
        if unknown:
            raise ValidationFailed(
                "Unknown query parameter.", fields={name: ["Unknown parameter."] for name in unknown}
            )
        filters = self.FilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        client = client_of(request)
        after = None
        if params.get("after"):
            after = event_get(client=client, event_id=params["after"])
            if after is None:
                raise NotFound("No such event (after).", fields={"after": ["No such event."]})
        events, has_more = event_feed(
            client=client,
            after=after,
            limit=params["limit"],
            type=params.get("type"),
            transaction_id=params.get("transaction"),
        )
        next_url = None
        if has_more:
            query = request.query_params.copy()
            query["after"] = events[-1].public_id
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"results": [event_representation(e) for e in events], "has_more": has_more, "next": next_url})


class EventDetailApi(APIView):
    xml_root_name = "event"

    @extend_schema(
        operation_id="event_retrieve",
        parameters=[OpenApiParameter("event_id", {"type": "string"}, OpenApiParameter.PATH)],
        responses={
            200: EventOutput,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such event"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["events"],
    )
    def get(self, request: Request, event_id: str) -> Response:
        event = event_get(client=client_of(request), event_id=event_id)
        if event is None:
            raise NotFound("No such event.")
        return Response(event_representation(event))


# --- Refunds (CONTRACT §9) -----------------------------------------------------------------


class RefundCreateInput(serializers.Serializer):
    amount = AmountField(
        required=False,
        help_text="What to refund; without it, all that remains refundable. Amount rules as for deposits.",
    )
    reason = StrictCharField(max_length=255, required=False, allow_blank=True, default="")

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be an object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class RefundCreateApi(APIView):
    xml_root_name = "refund"

    @extend_schema(
        operation_id="refund_create",
        parameters=[
            OpenApiParameter("transaction_id", {"type": "string", "format": "uuid"}, OpenApiParameter.PATH),
            _IDEMPOTENCY_HEADER,
        ],
        request={"application/json": RefundCreate, "application/xml": RefundCreateXml, "text/xml": RefundCreateXml},
        responses={
            202: RefundOutput,
            400: OpenApiResponse(ERROR_RESPONSE, description="Validation error or unparseable body"),
            **AUTHENTICATED_ERRORS,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such transaction"),
            409: OpenApiResponse(ERROR_RESPONSE, description="Idempotency-Key reused with a different body"),
            413: OpenApiResponse(ERROR_RESPONSE, description="Body too large"),
            415: OpenApiResponse(ERROR_RESPONSE, description="Unsupported media type"),
            422: OpenApiResponse(
                ERROR_RESPONSE,
                description="not_refundable (not a completed deposit), amount_exceeds_refundable, or "
                "invalid_amount (more decimals than the deposit's currency has)",
            ),
        },
        tags=["refunds"],
        description="Refund a completed deposit, in full or in part, through the gateway that took it.",
    )
    def post(self, request: Request, transaction_id: str) -> Response:
        client = client_of(request)
        txn = transaction_get(client=client, transaction_id=transaction_id)
        if txn is None:
            raise NotFound("No such transaction.")
        serializer = RefundCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = refund_create(
            client=client,
            transaction_id=txn.pk,
            amount=data.get("amount"),
            reason=data.get("reason", ""),
            idempotency_key=_idempotency_key(request),
        )
        headers = {"Location": f"/api/v1/refunds/{result.refund.pk}"}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(refund_representation(result.refund), status=status.HTTP_202_ACCEPTED, headers=headers)


class RefundDetailApi(APIView):
    xml_root_name = "refund"

    @extend_schema(
        operation_id="refund_retrieve",
        parameters=[OpenApiParameter("refund_id", {"type": "string", "format": "uuid"}, OpenApiParameter.PATH)],
        responses={
            200: RefundOutput,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such refund"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["refunds"],
    )
    def get(self, request: Request, refund_id: str) -> Response:
        refund = refund_get(client=client_of(request), refund_id=refund_id)
        if refund is None:
            raise NotFound("No such refund.")
        return Response(refund_representation(refund))
