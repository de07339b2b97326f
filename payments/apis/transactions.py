"""Merchant API: create deposits and withdrawals, read transactions (CONTRACT §1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.currencies import is_currency
from core.errors import NotFound
from core.pagination import PAGE_PARAMETERS, Pagination
from core.schema import AUTHENTICATED_ERRORS, ERROR_RESPONSE, DescribedBody, stripped_text_pattern
from core.serializers import QueryFilters, StrictBooleanField, StrictCharField, StrictInput

from ..auth import client_of
from ..methods import PaymentMethod, method_input_errors
from ..models import TransactionStatus, TransactionType
from ..money import AmountError, parse_amount
from ..representations import transaction_representation
from ..returnurl import return_url_problem
from ..schema import (
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
    WithdrawalCreate,
    WithdrawalCreateXml,
)
from ..selectors import transaction_get, transaction_list
from ..services import TransactionInput, transaction_create
from .inputs import IDEMPOTENCY_HEADER, AmountField, CodeField, idempotency_key
from .refunds import RefundOutput


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


class TransactionCreateInput(StrictInput):
    """A withdrawal's body, and what a deposit's has besides."""

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


@extend_schema_field({"type": "string", "nullable": True})
class NullableTextField(serializers.CharField):
    pass


@extend_schema_field(serializers.ChoiceField(choices=PaymentMethod.choices, allow_null=True))
class PaymentMethodField(serializers.CharField):
    pass


# The answers' shapes, for the schema only: payments.representations writes the answers (and the
# events) by hand, a test holds the two to the same fields. Docstrings here would be the schema's text.


class AttemptOutput(serializers.Serializer):
    reference = serializers.CharField()
    gateway = serializers.CharField()
    outcome = serializers.CharField()
    error = NullableTextField(read_only=True)
    created_at = serializers.DateTimeField()


class TransactionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=TransactionType.choices)
    status = serializers.ChoiceField(choices=TransactionStatus.choices)
    amount = serializers.CharField(read_only=True)
    currency = serializers.CharField()
    country = serializers.CharField()
    customer_id = serializers.CharField()
    gateway = NullableTextField(read_only=True)
    gateway_reference = NullableTextField(read_only=True)
    failure_reason = serializers.CharField(allow_null=True)
    next_action = NextActionField(allow_null=True)
    payment_method = PaymentMethodField(read_only=True, help_text="null when the details are free-form.")
    payment_details = serializers.DictField(child=serializers.CharField(), read_only=True)
    metadata = serializers.JSONField()
    attempts = AttemptOutput(many=True)
    refunded_amount = serializers.CharField(read_only=True, help_text="The sum of the succeeded refunds.")
    refunds = RefundOutput(many=True, help_text="Every refund, newest first.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


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


@dataclass(frozen=True)
class _Kind:
    """What a deposit's create and a withdrawal's differ in: the body, validated and described."""

    input: type[TransactionCreateInput]
    request: dict[str, type[DescribedBody]]


_KINDS: dict[str, _Kind] = {
    TransactionType.DEPOSIT: _Kind(
        input=DepositCreateInput,
        request={"application/json": DepositCreate, "application/xml": DepositCreateXml, "text/xml": DepositCreateXml},
    ),
    TransactionType.WITHDRAWAL: _Kind(
        input=TransactionCreateInput,
        request={
            "application/json": WithdrawalCreate,
            "application/xml": WithdrawalCreateXml,
            "text/xml": WithdrawalCreateXml,
        },
    ),
}


class _TransactionCreateSchema(AutoSchema):
    """The operation of the view's kind: `deposit_create` or `withdrawal_create`, with its own body."""

    def get_operation_id(self) -> str:
        return f"{self._kind()}_create"

    def get_request_serializer(self) -> Any:
        return _KINDS[self._kind()].request

    def _kind(self) -> str:
        return cast("TransactionCreateApi", self.view).kind


@extend_schema(
    responses={
        202: TransactionOutput,
        400: OpenApiResponse(ERROR_RESPONSE, description="Validation error or unparseable body"),
        **AUTHENTICATED_ERRORS,
        409: OpenApiResponse(ERROR_RESPONSE, description="Idempotency-Key reused with a different body"),
        413: OpenApiResponse(ERROR_RESPONSE, description="Body too large"),
        415: OpenApiResponse(ERROR_RESPONSE, description="Unsupported media type"),
        422: OpenApiResponse(ERROR_RESPONSE, description="no_route: no active route for country, currency, type"),
    },
    parameters=[IDEMPOTENCY_HEADER],
    examples=[_CREATE_EXAMPLE],
    tags=["transactions"],
)
class TransactionCreateApi(APIView):
    # POST /deposits and /withdrawals: one view, made for a kind (`as_view(kind=TransactionType.DEPOSIT)`).
    kind: str = ""
    xml_root_name = "transaction"
    schema = _TransactionCreateSchema()

    def post(self, request: Request) -> Response:
        xml = (request.content_type or "").split(";")[0].strip() in ("application/xml", "text/xml")
        serializer = _KINDS[self.kind].input(data=request.data, context={"transaction_type": self.kind, "xml": xml})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = transaction_create(
            client=client_of(request),
            data=TransactionInput(type=self.kind, **data),
            idempotency_key=idempotency_key(request),
        )
        headers = {"Location": f"/api/v1/transactions/{result.transaction.pk}"}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        body = result.shown if result.shown is not None else transaction_representation(result.transaction)
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


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
        return Response(transaction_representation(txn))


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
        filters = self.FilterInput.read(request.query_params, also=("page", "page_size"))
        queryset = transaction_list(client=client_of(request), filters=filters)
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([transaction_representation(txn) for txn in page or []])
