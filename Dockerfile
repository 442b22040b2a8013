# One image for the three processes: `hub connectors`, `hub streams`, `hub gateway`
# (and `hub analytics`).
FROM python:3.11-slim AS build
WORKDIR /src
# The versions the tests ran: requirements.lock's runtime part, every file checked against
# its hash (the code overrides aiokafka and Faust internals: open ranges would not do).
COPY requirements.lock pyproject.toml scripts/runtime_requirements.py ./
RUN python runtime_requirements.py requirements.lock pyproject.toml > runtime.lock \
    && pip install --no-cache-dir --prefix=/install --require-hashes --no-deps -r runtime.lock
COPY README.md ./
COPY hub ./hub
COPY hubcore ./hubcore
COPY schemas ./schemas
COPY connectors ./connectors
COPY streams ./streams
COPY gateway ./gateway
COPY analytics ./analytics
# Then the hub alone: its dependencies are all above, none resolved again.
RUN pip install --no-cache-dir --prefix=/install --no-deps .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 hub
COPY --from=build /install /usr/local
USER hub
WORKDIR /home/hub
ENV HUB_HOST=0.0.0.0 \
    HUB_LOG_FORMAT=json \
    HUB_DATA_DIR=/home/hub/data \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["hub"]
CMD ["--help"]
