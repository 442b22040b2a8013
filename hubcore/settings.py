"""The hub's one typed settings object, read from `HUB_*` environment variables and `.env`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_JWT_SECRET_BYTES = 32


def _split_csv(value: Any) -> Any:
    """Accept `a,b,c` (the natural form in an env var) as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _user_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting of every hub process. Field `foo_bar` is read from `HUB_FOO_BAR`."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- infrastructure -------------------------------------------------------------
    kafka_bootstrap: str = "localhost:9092"
    kafka_brokers: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Nodes of the local cluster `hub services up` starts: node i on the "
        "bootstrap port + 2(i-1) (its controller on the next port).",
    )
    mongo_url: str = "mongodb://localhost:27017"
    mongo_db: str = Field(default="hub", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    topic_namespace: str = Field(
        default="hub",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Prefix of every topic name: `<namespace>.raw-messages` and so on.",
    )
    topic_partitions: int = Field(default=6, ge=1, le=1024)
    topic_replication: int = Field(
        default=0, ge=0, le=16, description="Replicas per partition; 0: min(3, brokers)."
    )
    history_retention_ms: int = Field(
        default=-1,
        ge=-1,
        description="Retention of raw-messages and commands (replay's source); -1: forever. "
        "Existing history topics keeping less are a start-up error.",
    )

    # --- identity -------------------------------------------------------------------
    jwt_secret: SecretStr | None = None
    jwt_public_key_file: Path | None = None
    jwt_algorithms: CsvList = Field(default_factory=list)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = Field(default=10.0, ge=0, le=300)
    socketio_pid_key: SecretStr | None = Field(
        default=None,
        description="Key of Socket.IO recovery session ids, the same on every gateway; "
        "default: derived from HUB_JWT_SECRET (needed across processes with public-key tokens).",
    )
    jwt_max_lifetime: float = Field(
        default=86_400.0, ge=60, description="Longest accepted `exp - iat` of a token, seconds."
    )
    development: bool = Field(
        default=False,
        description="Development mode: tokens need no audience or issuer (`hub up` sets it).",
    )

    # --- credentials and outbound addresses -------------------------------------------
    credentials_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys (comma-separated, newest first) sealing stored credentials.",
    )
    outbound_allowed_hosts: CsvList = Field(
        default_factory=list,
        description="Host names, addresses or networks users may name although private.",
    )
    outbound_allow_plaintext: bool = Field(
        default=False, description="Allow user-supplied servers without TLS (IMAP ssl=false)."
    )

    # --- rate limits (`<count>/<s|min|h>`, token buckets per process) -------------------
    rate_ws_per_user: str = Field(default="30/min", pattern=r"^[1-9]\d*/(s|min|h)$")
    rate_ws_per_ip: str = Field(default="120/min", pattern=r"^[1-9]\d*/(s|min|h)$")
    rate_rest_per_user: str = Field(default="600/min", pattern=r"^[1-9]\d*/(s|min|h)$")
    rate_webhooks_per_account: str = Field(default="3000/min", pattern=r"^[1-9]\d*/(s|min|h)$")
    ws_max_per_user: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="Open sockets (/ws and Socket.IO together) one user may hold on one "
        "gateway process; one more is closed with 4429 `too_many_connections`.",
    )
    max_accounts_per_user: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="Accounts one user may connect; one more is answered 409 `too_many_accounts`.",
    )

    # --- HTTP and WebSocket ---------------------------------------------------------
    host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    connectors_port: int = Field(default=8001, ge=0, le=65535)
    streams_web_port: int = Field(default=6066, ge=0, le=65535)
    cors_origins: CsvList = Field(default_factory=lambda: ["http://localhost:5173"])
    trusted_proxies: CsvList = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Addresses whose X-Forwarded-For names the client (rate limits per IP).",
    )
    ws_auth_timeout: float = Field(default=10.0, gt=0, le=600)
    ws_max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    ws_send_queue: int = Field(default=1024, ge=8)
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float | None = Field(
        default=None, gt=0, description="How long a ping may go unanswered; default: the interval."
    )
    ws_resume_max_events: int = Field(
        default=10_000,
        ge=1,
        description="A resume needing more events than this gets `resume_unavailable`.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # --- connectors -----------------------------------------------------------------
    telegram_api_base: str = "https://api.telegram.org"
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    slack_api_base: str = "https://slack.com/api"
    connectors_outbound: bool = Field(
        default=True, description="Consume hub.outbound and send replies in this process."
    )
    send_timeout: float = Field(default=10.0, gt=0, le=120, description="Per platform call.")
    send_attempts: int = Field(
        default=5, ge=1, le=20, description="Platform calls per reply on retriable answers."
    )
    send_max_backoff: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait between calls (Retry-After too)."
    )
    poll_interval: float = Field(default=5.0, gt=0)
    poll_max_backoff: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="Longest wait between polls of an account whose polls keep failing "
        "(the wait doubles from HUB_POLL_INTERVAL).",
    )
    kafka_request_timeout: float = Field(default=5.0, gt=0, le=120)
    telegram_long_poll: int = Field(
        default=25, ge=0, le=50, description="`timeout` of each getUpdates long poll, seconds."
    )
    connectors_pollers: bool = Field(
        default=True, description="Run the pollers of `mode=poll` accounts in this process."
    )
    poll_lease_ttl: float = Field(
        default=15.0,
        ge=1,
        le=300,
        description="Seconds a connectors process holds an account's poller lease unrenewed "
        "(renewed every third of it); a dead holder's accounts move on after this.",
    )
    connectors_accounts_refresh: float = Field(
        default=30.0, gt=0, description="Seconds between re-reads of the poll-mode accounts."
    )
    connectors_account_cache_ttl: float = Field(
        default=2.0, ge=0, le=60, description="Seconds a webhook's account lookup is cached."
    )
    connectors_dedupe_size: int = Field(
        default=20_000, ge=0, description="Recently acked message ids remembered per process."
    )
    email_fetch_batch: int = Field(default=50, ge=1, le=1000)
    imap_timeout: float = Field(default=30.0, gt=0, le=600)
    email_max_bytes: int = Field(
        default=1024 * 1024,
        ge=16 * 1024,
        le=64 * 1024 * 1024,
        description="Bytes of one mail fetched over IMAP (a partial fetch: the rest is never "
        "read; the record says `truncated`).",
    )

    # --- streams --------------------------------------------------------------------
    streams_store: Literal["memory", "rocksdb"] = "memory"
    streams_batch_size: int = Field(default=500, ge=1)
    # Seconds before the group gives a silent (crashed) worker's partitions to another.
    streams_session_timeout: float = Field(default=10.0, ge=6, le=300)
    data_dir: Path = Path(".hub/data")

    # --- analytics (`hub analytics`) -------------------------------------------------
    analytics_dir: Path = Path(".hub/analytics")
    analytics_group: str = Field(
        default="hub-analytics",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Consumer group of `hub analytics export` (progress mirror only).",
    )

    # --- local servers (`hub services`) ---------------------------------------------
    services_dir: Path = Path(".hub")
    # Kafka jars and the FerretDB build, shared by every checkout on the machine.
    cache_dir: Path = Field(default_factory=lambda: _user_cache() / "hub")
    kafka_version: str = "4.1.1"
    ferretdb_version: str = "v1.24.2"

    # --- logging --------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    # --- Web Push (docs/push.md) ------------------------------------------------------
    vapid_private_key: SecretStr | None = Field(
        default=None,
        description="VAPID private key (RFC 8292): url-safe base64 of the 32-byte P-256 "
        "scalar, or a PEM; unset: no Web Push (`hub up` generates a development key).",
    )
    vapid_subject: str = Field(
        default="mailto:push@example.invalid",
        pattern=r"^(mailto:[^\s]{3,200}|https://[^\s]{3,200})$",
        description="The `sub` of VAPID tokens: how a push service reaches the operator.",
    )
    connectors_push: bool = Field(
        default=True,
        description="Run the push notifier (consumer of user-events) in this process, "
        "when HUB_VAPID_PRIVATE_KEY is set.",
    )
    push_grace: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="Seconds a user must have had no live device before a push is sent.",
    )
    push_interval: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="At most one notification per conversation this often, seconds; what "
        'arrives meanwhile is summed up in one ("3 new messages") at its end.',
    )
    push_preview: bool = Field(
        default=True,
        description="Put sender and a short text preview in notifications; false: only "
        "the platform and a count (users may also turn previews off).",
    )
    push_preview_chars: int = Field(default=120, ge=0, le=1000)
    push_max_subscriptions_per_user: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Browsers one user may subscribe; one more is answered 409.",
    )
    push_ttl: int = Field(
        default=86_400, ge=0, le=2_419_200, description="`TTL` of each push message, seconds."
    )
    push_timeout: float = Field(default=10.0, gt=0, le=120, description="Per push service call.")
    push_attempts: int = Field(
        default=4, ge=1, le=10, description="Calls per notification on 429/5xx answers."
    )

    # --- media in: fetching attachments (docs/media.md) ------------------------------
    media_fetch: bool = Field(
        default=True,
        description="Consume hub.media-fetch and fetch attachments in this connectors process.",
    )
    media_fetch_timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds one download of one file may take."
    )
    media_fetch_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Downloads of one file on retriable answers (5xx, 429, timeouts, resets).",
    )
    media_fetch_concurrency: int = Field(
        default=8, ge=1, le=256, description="Files fetched at once per connectors process."
    )
    media_inline_max_bytes: int = Field(
        default=640 * 1024,
        ge=0,
        le=768 * 1024,
        description="Largest email part sent inside its fetch job (Kafka's 1 MiB record limit); "
        "a larger one is `failed` (`too_large`).",
    )

    # --- media (issue 24): blob store, caps, signed download URLs ----------------------
    blob_store: Literal["gridfs", "s3"] = Field(
        default="gridfs",
        description="Where attachment bytes live: GridFS in the hub's MongoDB, or an "
        "S3-compatible bucket (the HUB_S3_* settings).",
    )
    gridfs_bucket: str = Field(default="blobs", description="GridFS bucket name (gridfs).")
    gridfs_database: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_-]{0,63}$",
        description="Database of the GridFS bucket; empty: `<HUB_MONGO_DB>_blobs`. A database "
        "of its own: on the embedded FerretDB (SQLite, one writer per database) file writes "
        "then never hold up the messages' writes.",
    )
    s3_endpoint: str = Field(
        default="",
        description="S3-compatible endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com",
    )
    s3_bucket: str = Field(default="", description="Bucket holding the blobs (path-style URLs).")
    s3_region: str = Field(default="us-east-1", description="Region signed into SigV4.")
    s3_access_key_id: str = Field(default="", description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    s3_prefix: str = Field(default="blobs/", description="Key prefix of every blob object.")
    media_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="Largest single attachment, in bytes."
    )
    media_user_quota_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=0,
        description="Total attachment bytes one user may hold (counted per attachment).",
    )
    media_max_image_pixels: int = Field(
        default=50_000_000,
        ge=1,
        description="Images whose header declares more pixels are refused (decompression bombs).",
    )
    media_thumbnail_px: int = Field(
        default=320, ge=32, le=2048, description="Longest side of an image thumbnail."
    )
    media_url_key: SecretStr | None = Field(
        default=None,
        description="Key signing the expiring download URLs handed to generic callbacks "
        "(unset: derived from HUB_JWT_SECRET).",
    )
    media_url_ttl: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="Lifetime of a signed download URL, s."
    )
    public_url: str = Field(
        default="http://localhost:8000",
        description="The gateway's address as platforms reach it (signed download URLs).",
    )

    # --- security round two (issue 22): what one user's servers and cursors may take -
    imap_threads: int = Field(
        default=16, ge=1, le=256, description="Threads for IMAP calls, all accounts of a process."
    )
    smtp_threads: int = Field(
        default=8, ge=1, le=256, description="Threads for SMTP sessions (email replies)."
    )
    blocking_threads_per_user: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Of each of those pools, the threads one user's calls may hold at once.",
    )
    ws_resume_scan_per_user: str = Field(
        default="2000000/h",
        pattern=r"^[1-9]\d*/(s|min|h)$",
        description="Records of the event topic one user's resumes may make a gateway process "
        "read (a resume counts those between its cursor and now); beyond: resume_unavailable.",
    )
    imap_poll_deadline: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds one email poll's IMAP calls may take together; then the "
        "connection is cut and the account backs off.",
    )
    # --- presence (docs/presence.md) ------------------------------------------------
    # Seconds between a gateway's heartbeats (and the streams workers' clock ticks) on
    # hub.presence; a gateway silent for `presence_lease_s` has its devices expire.
    presence_heartbeat_s: float = Field(default=10.0, gt=0, le=300)
    presence_lease_s: float = Field(default=30.0, gt=0, le=3600)
    # Names this gateway process in presence records (`-<random>` is added at each start);
    # empty: `<host>-<pid>`.
    gateway_id: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9._:-]*$")

    # --- webhook deliveries (issue 26, docs/webhooks.md) --------------------------------
    # Endpoint URLs follow the outbound policy: HUB_OUTBOUND_ALLOW_PLAINTEXT for http://,
    # HUB_OUTBOUND_ALLOWED_HOSTS for private and loopback addresses.
    webhooks_deliver: bool = Field(
        default=True,
        description="Consume hub.user-events and deliver webhooks in this connectors process.",
    )
    webhooks_max_per_user: int = Field(
        default=10, ge=1, le=1000, description="Webhook endpoints one user may register (409)."
    )
    webhook_secret_grace: float = Field(
        default=86_400.0,
        ge=0,
        le=30 * 86_400,
        description="Seconds a rotated-out signing secret still signs (beside the new one).",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, le=60, description="Per delivery attempt: connect, send, answer."
    )
    webhook_max_answer_bytes: int = Field(
        default=1024, ge=0, le=64 * 1024, description="Bytes of a receiver's answer read."
    )
    webhook_attempts: int = Field(
        default=18,
        ge=1,
        le=50,
        description="Attempts per delivery before its dead letter and the endpoint's "
        "disabling; with the back-off defaults the last one comes 19 h (jitter: 13-26 h) "
        "after the first.",
    )
    webhook_backoff_first: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds before the first retry (doubling)."
    )
    webhook_backoff_max: float = Field(
        default=14_400.0,
        gt=0,
        le=86_400,
        description="Longest wait between attempts, Retry-After included (seconds).",
    )
    webhook_scan_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between looks for deliveries that came due (retries, replays).",
    )
    webhook_replay_max: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Events one replay request may re-send."
    )
    webhook_log_days: float = Field(
        default=7.0,
        gt=0,
        le=365,
        description="Days a finished delivery (delivered or dead) stays in the delivery log.",
    )
    # --- SMTP session deadline (docs/platforms.md, "Email") -------------------------
    smtp_session_deadline: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds one SMTP session (connect to QUIT) may take in all; then the "
        "connection is cut and the reply fails (each step also has HUB_SEND_TIMEOUT).",
    )
    # Media beside the text path (issue 24): the fetcher's turns at the store, large email
    # parts fetched by IMAP, and collecting blobs no attachment names any more.
    media_store_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="The media fetcher's store operations (MongoDB, GridFS writes) at once per "
        "connectors process: downloads overlap, their store work queues behind the text path's.",
    )
    media_imap_fetch: bool = Field(
        default=True,
        description="Fetch an email part over the inline bound by IMAP (BODY.PEEK[<part>]) "
        "instead of failing it `too_large`.",
    )
    media_gc_batch: int = Field(
        default=100, ge=1, le=10_000, description="Blobs one pass of the media sweep looks at."
    )
    media_gc_grace: float = Field(
        default=3600.0,
        ge=0,
        le=30 * 86400,
        description="Seconds a blob stays after it was stored before the sweep may delete it "
        "unnamed (a fetch or upload under way names it only once it is stored).",
    )
    # --- gateway fetch spacing (issue 21, docs/gateway-cost.md) -------------------------
    gateway_fetch_spacing_ms: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="Least milliseconds between the starts of two fetches of the gateway's "
        "pump: records that come faster wait for the next fetch together (at most this "
        "long); a fetch that finds nothing still waits for the first record. 0 (the "
        "default): refetch at once; 2 cut the gateway's CPU at 500 msg/s by a quarter but "
        "slowed some of P5's bursts (docs/gateway-cost.md).",
    )

    _split = field_validator(
        "jwt_algorithms", "cors_origins", "outbound_allowed_hosts", "trusted_proxies", mode="before"
    )(_split_csv)

    @field_validator("jwt_secret", "socketio_pid_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_JWT_SECRET_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @field_validator("jwt_public_key_file")
    @classmethod
    def _key_file_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _pin_algorithms(self) -> Settings:
        algorithms = self.jwt_algorithms
        if not algorithms:
            # Pin a default that matches the configured key; never infer from the token.
            if self.jwt_public_key_file is not None:
                algorithms = ["RS256"]
            else:
                algorithms = ["HS256"]
            object.__setattr__(self, "jwt_algorithms", algorithms)
        unknown = [a for a in algorithms if a not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS]
        if unknown:
            raise ValueError(f"HUB_JWT_ALGORITHMS: unsupported or unsafe algorithm {unknown[0]!r}")
        hmac = [a for a in algorithms if a in HMAC_ALGORITHMS]
        if hmac and len(hmac) != len(algorithms):
            # Mixing both families is the classic key-confusion hole.
            raise ValueError("HUB_JWT_ALGORITHMS: do not mix HMAC and public-key algorithms")
        if hmac and self.jwt_public_key_file is not None and self.jwt_secret is None:
            raise ValueError("HUB_JWT_ALGORITHMS: HMAC algorithms need HUB_JWT_SECRET")
        if not hmac and self.jwt_public_key_file is None and self.jwt_secret is not None:
            raise ValueError(
                "HUB_JWT_ALGORITHMS: public-key algorithms need HUB_JWT_PUBLIC_KEY_FILE"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> Settings:
        if self.presence_lease_s < 2 * self.presence_heartbeat_s:
            raise ValueError(
                "HUB_PRESENCE_LEASE_S: must be at least twice HUB_PRESENCE_HEARTBEAT_S, "
                "or a live gateway's devices expire between two heartbeats"
            )
        return self

    @property
    def jwt_uses_hmac(self) -> bool:
        """True when tokens are verified with the shared secret (HS*)."""
        return self.jwt_algorithms[0] in HMAC_ALGORITHMS

    def require_jwt_key(self) -> None:
        """Fail like a bad setting when a process that verifies tokens has no key."""
        if self.jwt_uses_hmac and self.jwt_secret is None:
            raise SettingsError("HUB_JWT_SECRET", "is required (or set HUB_JWT_PUBLIC_KEY_FILE)")
        if not self.development:
            # Without both, a token minted for another service with the same key would pass.
            for variable, value in (
                ("HUB_JWT_AUDIENCE", self.jwt_audience),
                ("HUB_JWT_ISSUER", self.jwt_issuer),
            ):
                if not value:
                    raise SettingsError(variable, "is required (or set HUB_DEVELOPMENT=true)")

    def require_credentials_key(self) -> SecretStr:
        """The sealing keys; a process that reads or writes accounts cannot run without."""
        if self.credentials_key is None or not self.credentials_key.get_secret_value().strip():
            raise SettingsError(
                "HUB_CREDENTIALS_KEY",
                "is required; generate one with: hub accounts new-key",
            )
        return self.credentials_key


class SettingsError(Exception):
    """A setting is missing or invalid; `str()` is the one line shown to the operator."""

    retriable = False

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


def _first_error(exc: ValidationError) -> SettingsError:
    err = exc.errors()[0]
    loc = [str(part) for part in err.get("loc", ()) if str(part)]
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc:
        variable = "HUB_" + loc[0].upper()
    elif message.startswith("HUB_"):
        variable, _, message = message.partition(": ")
    else:
        variable = "HUB_*"
    if "input" in err and loc and not isinstance(err["input"], dict):
        shown = "(hidden)" if "secret" in loc[0] or "key" in loc[0] else repr(err["input"])[:60]
        message = f"{message} (got {shown})"
    return SettingsError(variable, message)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, raising `SettingsError` naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _first_error(exc) from None


def settings_or_exit(**overrides: Any) -> Settings:
    """Entry-point helper: on a bad setting print one line naming it and exit with code 2."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        print(f"hub: invalid setting {exc}", file=sys.stderr)
        raise SystemExit(2) from None
