from django.urls import path

from .reports import csp_report
from .views import pay_page, pay_return

urlpatterns = [
    path("pay/<str:transaction_id>", pay_page, name="pay-page"),
    path("pay/<str:transaction_id>/return", pay_return, name="pay-return"),
    path("csp-report", csp_report, name="csp-report"),
]
