from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from callbacks.apis import CallbackReceiveApi
from core.middleware import api_not_found
from core.schema import SchemaView
from gateways.apis import GatewayListApi
from ops import probes
from ops.dashboard import dashboard_view
from ops.metrics import metrics_view
from payments.apis.events import EventDetailApi, EventListApi
from payments.apis.refunds import RefundCreateApi, RefundDetailApi
from payments.apis.transactions import TransactionCreateApi, TransactionDetailApi, TransactionListApi
from payments.models import TransactionType
from vault.apis import CustomerPaymentMethodListApi, PaymentMethodDetailApi
from webhooks.apis import (
    EventDeliveryListApi,
    EventRedeliverApi,
    WebhookEndpointDetailApi,
    WebhookEndpointListApi,
)

api_v1 = [
    re_path(r"^api/v1/deposits/?$", TransactionCreateApi.as_view(kind=TransactionType.DEPOSIT), name="deposit-create"),
    re_path(
        r"^api/v1/withdrawals/?$",
        TransactionCreateApi.as_view(kind=TransactionType.WITHDRAWAL),
        name="withdrawal-create",
    ),
    re_path(r"^api/v1/transactions/?$", TransactionListApi.as_view(), name="transaction-list"),
    re_path(
        r"^api/v1/transactions/(?P<transaction_id>[^/]+)/?$", TransactionDetailApi.as_view(), name="transaction-detail"
    ),
    re_path(r"^api/v1/events/?$", EventListApi.as_view(), name="event-list"),
    re_path(r"^api/v1/events/(?P<event_id>[^/]+)/?$", EventDetailApi.as_view(), name="event-detail"),
    re_path(
        r"^api/v1/events/(?P<event_id>[^/]+)/deliveries/?$", EventDeliveryListApi.as_view(), name="event-deliveries"
    ),
    re_path(r"^api/v1/events/(?P<event_id>[^/]+)/redeliver/?$", EventRedeliverApi.as_view(), name="event-redeliver"),
    re_path(r"^api/v1/webhook-endpoints/?$", WebhookEndpointListApi.as_view(), name="webhook-endpoint-list"),
    re_path(
        r"^api/v1/webhook-endpoints/(?P<endpoint_id>[^/]+)/?$",
        WebhookEndpointDetailApi.as_view(),
        name="webhook-endpoint-detail",
    ),
    re_path(
        r"^api/v1/transactions/(?P<transaction_id>[^/]+)/refunds/?$", RefundCreateApi.as_view(), name="refund-create"
    ),
    re_path(r"^api/v1/refunds/(?P<refund_id>[^/]+)/?$", RefundDetailApi.as_view(), name="refund-detail"),
    re_path(r"^api/v1/gateways/?$", GatewayListApi.as_view(), name="gateway-list"),
    re_path(
        r"^api/v1/customers/(?P<customer_id>[^/]+)/payment-methods/?$",
        CustomerPaymentMethodListApi.as_view(),
        name="customer-payment-method-list",
    ),
    re_path(
        r"^api/v1/payment-methods/(?P<payment_method_id>[^/]+)/?$",
        PaymentMethodDetailApi.as_view(),
        name="payment-method-detail",
    ),
    re_path(r"^api/v1/callbacks/(?P<gateway_code>[^/]+)/?$", CallbackReceiveApi.as_view(), name="callback-receive"),
]

urlpatterns = [
    *api_v1,
    path("", include("checkout.urls")),
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # The split view loads its start-up script from a URL: the Content-Security-Policy allows no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="paygate/swagger_ui.html"),
        name="swagger-ui",
    ),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="gateway-dashboard"),
    path("admin/", admin.site.urls),
    # Last: any other path under /api/ answers the contract's JSON 404, DEBUG or not.
    re_path(r"^api/", api_not_found),
]

handler400 = "core.errors.handler400"
handler403 = "core.errors.handler403"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
