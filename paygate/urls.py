from django.contrib import admin
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from callbacks.apis import CallbackReceiveApi
from gateways.apis import GatewayListApi
from gateways.dashboard import dashboard_view
from payments.apis import DepositCreateApi, TransactionDetailApi, TransactionListApi, WithdrawalCreateApi

from . import ops
from .metrics import metrics_view
from .middleware import api_not_found

api_v1 = [
    re_path(r"^api/v1/deposits/?$", DepositCreateApi.as_view(), name="deposit-create"),
    re_path(r"^api/v1/withdrawals/?$", WithdrawalCreateApi.as_view(), name="withdrawal-create"),
    re_path(r"^api/v1/transactions/?$", TransactionListApi.as_view(), name="transaction-list"),
    re_path(
        r"^api/v1/transactions/(?P<transaction_id>[^/]+)/?$", TransactionDetailApi.as_view(), name="transaction-detail"
    ),
    re_path(r"^api/v1/gateways/?$", GatewayListApi.as_view(), name="gateway-list"),
    re_path(r"^api/v1/callbacks/(?P<gateway_code>[^/]+)/?$", CallbackReceiveApi.as_view(), name="callback-receive"),
]

urlpatterns = [
    *api_v1,
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
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

handler400 = "paygate.errors.handler400"
handler403 = "paygate.errors.handler403"
handler404 = "paygate.errors.handler404"
handler500 = "paygate.errors.handler500"
