# One image for the worker, the generator and the viewer (see docs/kubernetes.md):
#   worker     faust -A app worker -l info          (the default command)
#   generator  python -m generator ...   or  fraud-generator ...
#   viewer     python -m viewer ...      or  fraud-viewer ...
# The packages live in the virtualenv /opt/venv; the working directory is empty on purpose.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes,
# not on every code change. Wheels only, so the image needs no compiler.
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.run([sys.executable, '-m', 'pip', 'install', '--only-binary=:all:', *deps], check=True)"
# Then the code: a regular (non-editable) install of the packages and their scripts.
COPY README.md ./
COPY kafka_security ./kafka_security
COPY app ./app
COPY generator ./generator
COPY viewer ./viewer
RUN pip install --no-deps --no-cache-dir .

FROM ${PYTHON_IMAGE}
# A fixed numeric uid/gid, so Kubernetes can check runAsNonRoot against the image.
RUN groupadd --system --gid 10001 fraud \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin fraud \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only in the pods (bytecode is built above).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    WEB_BIND=0.0.0.0 \
    WEB_PORT=6066
WORKDIR /srv
USER 10001:10001
EXPOSE 6066
VOLUME ["/data"]
CMD ["faust", "-A", "app", "worker", "-l", "info"]
