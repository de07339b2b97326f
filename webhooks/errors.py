from rest_framework import status

from core.errors import ApplicationError


class EndpointLimitReached(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "endpoint_limit_reached"
