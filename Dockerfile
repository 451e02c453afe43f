FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events ./events
COPY handlers ./handlers
COPY worker ./worker
RUN pip install --no-cache-dir . && useradd --create-home renewals && mkdir /data && chown renewals /data
USER renewals
ENV RENEWALS_STORE_URL=sqlite:////data/renewals.db
VOLUME ["/data"]
ENTRYPOINT ["renewals"]
CMD ["run"]
