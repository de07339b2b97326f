"""Paygate's URLs plus the floor endpoints under /bench/floor/."""

from django.urls import include, path

from bench.floor.views import FloorCreateApi
from paygate.urls import handler400, handler403, handler404, handler500  # noqa: F401

urlpatterns = [
    path("bench/floor/deposits", FloorCreateApi.as_view(transaction_type="deposit"), name="floor-deposit"),
    path("bench/floor/withdrawals", FloorCreateApi.as_view(transaction_type="withdrawal"), name="floor-withdrawal"),
    path("", include("paygate.urls")),
]
