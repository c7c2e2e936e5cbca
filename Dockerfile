# Image of the Logwarden CLI; docker-compose.yml runs `logwarden worker` and `logwarden es-setup` from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Never run as root in the container.
RUN useradd --system --create-home --home-dir /var/lib/logwarden --uid 10001 logwarden

WORKDIR /src
# Dependencies first so code edits reuse the cached layer: install the project's declared dependencies
# from pyproject.toml, then the project itself without touching them again.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY pipeline ./pipeline
COPY models ./models
RUN pip install --no-deps . && rm -rf /src/build

COPY examples/worker.yaml /etc/logwarden/worker.yaml
# Saved objects for `logwarden kibana import` (its default --file inside the image).
COPY kibana /usr/share/logwarden/kibana

USER logwarden
WORKDIR /var/lib/logwarden
# Prometheus metrics of the worker (metrics_port in worker.yaml).
EXPOSE 9108
CMD ["logwarden", "--help"]
