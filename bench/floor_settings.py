"""Paygate's settings plus the floor app; the floor's web server and worker run with these."""

from paygate.settings import *  # noqa: F401,F403
from paygate.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.floor"]
ROOT_URLCONF = "bench.floor_urls"
