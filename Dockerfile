# secretmagic worker: `faststream run app:app`. Configure with MESSENGER_* (Docker secret path for
# the password), STORE_DSN, LOGS_DSN; mount the mutable config at /app/configs/config.dev.yaml.
# deploy/compose.yaml runs two of these beside Redis, StarRocks, PostgreSQL, Prometheus, Grafana.

# --- build: the locked dependencies (every pin hash-checked), then the package, in a venv ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
# The lock first: this layer is rebuilt only when requirements.lock changes (`make lock`).
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml ./
COPY app ./app
COPY core ./core
COPY handlers ./handlers
COPY settings ./settings
COPY store ./store
COPY features ./features
COPY bom ./bom
RUN /opt/venv/bin/pip install --no-deps . && /opt/venv/bin/pip check

# --- run: the venv and the configuration, as an unprivileged user ---
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY configs ./configs
RUN useradd --create-home --uid 10001 secretmagic && mkdir -p /app/data \
    && chown secretmagic /app/data
USER secretmagic
VOLUME ["/app/data"]
EXPOSE 9108

# Health: the /health endpoint of the metrics server (the status page is its `/`).
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; \
sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/health').status != 200)"

# faststream forwards SIGTERM to the app: in-flight handlers finish within SHUTDOWN_TIMEOUT.
STOPSIGNAL SIGTERM
CMD ["faststream", "run", "app:app"]
