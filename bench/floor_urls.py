"""The floor's endpoints under /bench/floor/ (and Paygate's /healthz, which the harness polls)."""

from django.urls import path

from bench.floor.views import FloorCallbackApi, FloorCreateApi
from ops.probes import healthz

urlpatterns = [
    path("bench/floor/deposits", FloorCreateApi.as_view(transaction_type="deposit"), name="floor-deposit"),
    path("bench/floor/withdrawals", FloorCreateApi.as_view(transaction_type="withdrawal"), name="floor-withdrawal"),
    path("bench/floor/callbacks", FloorCallbackApi.as_view(), name="floor-callback"),
    path("healthz", healthz),
]
