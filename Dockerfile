# bsm-gateway's image. `deploy/build-image` builds it with podman on a Debian root it makes
# with mmdebstrap from Debian's packages (no image registry needed). Where a registry is
# reachable, any Debian 12 image with python3 and python3-venv installed serves as BASE.
#
#   podman run --read-only -p 25:2525 -p 587:2587 -p 465:2465 \
#     -v bsm-data:/var/lib/bsm-gateway -v /path/to/tls:/run/tls:ro bsm-gateway
#
# The TLS folder holds fullchain.pem and privkey.pem. The root file system can be read-only:
# the gateway writes only to the data volume (its SQLite database, maildir outbox, spool and
# temporary files; with PostgreSQL, BSM_DATABASE_URL, only the latter).
ARG BASE=localhost/bsm-base:bookworm

FROM ${BASE} AS build
# The wheels of the gateway and of everything it needs, made beforehand by `pip wheel`
# (deploy/build-image): the build reaches no network, and compiles nothing.
COPY build/wheels /wheels
RUN python3 -m venv /opt/bsm-gateway \
    && /opt/bsm-gateway/bin/pip install --no-cache-dir --no-index --find-links /wheels \
        bsm-gateway \
    && /opt/bsm-gateway/bin/pip uninstall --yes --quiet pip setuptools \
    && /opt/bsm-gateway/bin/python -m compileall -q -j 0 /opt/bsm-gateway/lib

FROM ${BASE}
RUN useradd --uid 10001 --user-group --no-create-home \
        --home-dir /var/lib/bsm-gateway --shell /usr/sbin/nologin bsm \
    && install -d -o bsm -g bsm -m 0750 /var/lib/bsm-gateway \
    && install -d -m 0755 /run/tls
COPY --from=build /opt/bsm-gateway /opt/bsm-gateway
COPY deploy/container.toml /etc/bsm-gateway/gateway.toml
ENV PATH=/opt/bsm-gateway/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    BSM_CONFIG=/etc/bsm-gateway/gateway.toml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/var/lib/bsm-gateway
USER 10001:10001
WORKDIR /var/lib/bsm-gateway
VOLUME ["/var/lib/bsm-gateway"]
# MX, submission (STARTTLS, implicit TLS), metrics with /healthz and /readyz, auditor console.
EXPOSE 2525 2587 2465 2590 2592
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["bsm-gateway", "check"]
# SIGTERM: stop accepting, finish open transactions and deliveries in flight, exit 0.
# SIGHUP: read the content policy again.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bsm-gateway"]
CMD ["serve"]
