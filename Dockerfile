# One image for the three processes: `hub connectors`, `hub streams`, `hub gateway`
# (and `hub analytics`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY hubcore ./hubcore
COPY schemas ./schemas
COPY connectors ./connectors
COPY streams ./streams
COPY gateway ./gateway
COPY analytics ./analytics
RUN pip install --no-cache-dir --prefix=/install .

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
