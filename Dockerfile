FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events ./events
COPY handlers ./handlers
COPY worker ./worker
# The otel extra is loaded only when OTEL_* variables turn tracing on (docs/tracing.md); the
# console extra serves `renewals console` (docs/console.md). The user's uid is fixed (1000): the
# console's users file, mode 0600, is mounted read-only and must belong to it.
RUN pip install --no-cache-dir '.[otel,console]' && useradd --create-home --uid 1000 renewals && mkdir /data && chown renewals /data
USER renewals
ENV RENEWALS_STORE_URL=sqlite:////data/renewals.db \
    RENEWALS_METRICS_PORT=9100 \
    RENEWALS_METRICS_HOST=0.0.0.0
EXPOSE 9100
VOLUME ["/data"]
# Healthy means ready: consuming from the broker with the store answering (/readyz). For
# Kubernetes, probe /healthz for liveness and /readyz for readiness on the same port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:9100/readyz', timeout=2).status != 200)"]
ENTRYPOINT ["renewals"]
CMD ["run"]
