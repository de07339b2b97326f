# Paygate: one image for every process (web, worker, beat, migrate, sandbox gateways);
# docker-compose.yml picks the process with `command:`. The default CMD is the web server.
# No secrets are baked in: SECRET_KEY, FERNET_KEYS, DATABASE_URL, ... come from the
# environment (or <NAME>_FILE) at run time.
FROM python:3.11-slim

# PAYGATE_DATA_DIR: each process creates this folder when Django starts (paygate/apps.py), so
# it must be writable by the app user; STATIC_ROOT is $PAYGATE_DATA_DIR/static, sandbox state files go in ./sandbox.
# WEB_CONCURRENCY / WEB_THREADS: the web server's processes and threads per process (bin/web);
# PAYGATE_BIND: where it listens (docker-compose.yml puts nginx in front and publishes only that).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=paygate.settings \
    PAYGATE_DATA_DIR=/data \
    WEB_CONCURRENCY=3 \
    PAYGATE_BIND=0.0.0.0:8000

WORKDIR /app

RUN groupadd --system --gid 10001 paygate \
 && useradd --system --uid 10001 --gid paygate --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin paygate

# Runtime dependencies only (requirements-dev.txt is not installed). Every pin has a
# manylinux wheel for CPython 3.11, so no compiler is needed.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The code stays root-owned (read-only for the app user); only /data is writable.
COPY . .

# collectstatic needs neither a database nor a broker; the throwaway values below exist only
# for this RUN line (they are not ENV, so they are not in the image's environment) and
# keep settings.py from warning or creating an embedded broker folder. With DEBUG off the
# secrets must pass the start-up strength checks, hence random ones.
RUN mkdir -p /data/sandbox /metrics \
 && SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    FERNET_KEYS="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
    PAYGATE_FINGERPRINT_KEYS="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
    PAYGATE_VAULT_KEYS="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
    PAYGATE_METRICS_TOKEN=build-only \
    DEBUG=False \
    DATABASE_URL=postgres://build:build@127.0.0.1:1/build \
    CELERY_BROKER_URL=redis://127.0.0.1:1/0 \
    python manage.py collectstatic --noinput \
 && chown -R paygate:paygate /data /metrics

USER paygate

EXPOSE 8000

# granian (bin/web): WEB_CONCURRENCY (3 above) processes x WEB_THREADS (4) threads. Request
# headers are read by granian's event loop, not by a thread; bodies are read by the thread,
# so publish the image behind a buffering proxy (docker-compose.yml: nginx).
CMD ["bin/web"]
