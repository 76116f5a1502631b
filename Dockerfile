# bsm-gateway container: `docker build -t bsm-gateway .` then
# `docker run -p 25:2525 -p 587:2587 -p 465:2465 -v bsm-data:/var/lib/bsm-gateway \
#   -v /path/to/tls:/run/tls:ro bsm-gateway` (the TLS folder holds fullchain.pem, privkey.pem).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/bsm-gateway bsm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY deploy/container.toml /etc/bsm-gateway/gateway.toml
ENV BSM_CONFIG=/etc/bsm-gateway/gateway.toml \
    PYTHONUNBUFFERED=1
USER bsm
WORKDIR /var/lib/bsm-gateway
VOLUME ["/var/lib/bsm-gateway"]
EXPOSE 2525 2587 2465 2590 2592
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["bsm-gateway", "check"]
# SIGTERM: stop accepting, finish open transactions and deliveries in flight, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bsm-gateway"]
CMD ["serve"]
