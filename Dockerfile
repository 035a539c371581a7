# secretmagic worker: `faststream run app:app`. Configure with MESSENGER_* (Docker secret path for
# the password), STORE_DSN, LOGS_DSN; mount the mutable config at /app/configs/config.dev.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml ./
COPY app ./app
COPY store ./store
COPY handlers.py features.py bom.py settings.py ./
RUN pip install .

COPY configs ./configs
RUN useradd --create-home --uid 10001 secretmagic && mkdir -p /app/data \
    && chown secretmagic /app/data
USER secretmagic
VOLUME ["/app/data"]
EXPOSE 9108

# Health: the /health endpoint of the metrics server.
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; \
sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/health').status != 200)"

# faststream forwards SIGTERM to the app: in-flight handlers finish within SHUTDOWN_TIMEOUT.
STOPSIGNAL SIGTERM
CMD ["faststream", "run", "app:app"]
