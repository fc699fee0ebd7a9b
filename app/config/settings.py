"""Settings read from the environment (``SHOP_*``), validated once at start-up."""

from __future__ import annotations

import functools
import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


class Role(StrEnum):
    """Which part of the system one API process serves."""

    ALL = "all"
    COMMAND = "command"
    QUERY = "query"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and the problem."""


class Settings(BaseSettings):
    """Everything the service can be told from outside."""

    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore", frozen=True)

    database_url: str | None = None
    read_database_url: str | None = None
    redis_url: str | None = None
    redis_cluster: bool = False  # SHOP_REDIS_URL names one node of a Redis Cluster
    data_dir: Path = Path(".shop-data")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    role: Role = Role.ALL
    # Role `all`: `shop serve` runs the relay and projectors as a child process (`shop
    # worker`), off the API's event loop; false: on the API's event loop, in each process.
    pipeline_process: bool = True
    # After start-up, keep the objects made so far out of full garbage collections
    # (app/runtime/heap.py); false for an app that shares its process (the tests' servers).
    gc_freeze: bool = True
    workers: int = Field(1, ge=1, le=64)
    log_level: str = "info"

    redis_prefix: str = Field("shop", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    db_pool_size: int = Field(10, ge=1, le=200)
    db_connect_timeout_s: float = Field(5.0, gt=0, le=120)
    readiness_timeout_s: float = Field(2.0, gt=0, le=60)
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    max_subscriptions_per_connection: int = Field(100, ge=1, le=10_000)
    ws_keepalive_s: float = Field(15.0, gt=0, le=300)
    ws_connection_init_timeout_s: float = Field(10.0, gt=0, le=300)
    max_websockets: int = Field(10_000, ge=1, le=1_000_000)  # open at once, per process

    stream_partitions: int = Field(8, ge=1, le=1024)
    stream_max_len: int = Field(1_000_000, ge=1000)
    relay_batch_size: int = Field(500, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(1.0, gt=0, le=60)
    # Busy (its last pass published more than one event), the relay waits this long after
    # a wake-up before it reads, so that batches, and the projections' after them, stay
    # several events big under load; at a trickle it never waits. 0: never.
    relay_gather_ms: float = Field(3.0, ge=0, le=1000)
    projector_batch_size: int = Field(500, ge=1, le=10_000)
    projector_max_attempts: int = Field(3, ge=1, le=20)
    lease_ttl_s: float = Field(10.0, ge=1, le=300)
    consistency_timeout_ms: int = Field(5000, ge=0, le=60_000)
    # Waits for projections to catch up (consistentWith, payloads' read models,
    # projectionsCaughtUp) at once: per HTTP request or WebSocket, and per process.
    max_waits_per_request: int = Field(10, ge=1, le=1000)
    max_waits_per_process: int = Field(2000, ge=1, le=1_000_000)
    # The key consistency tokens are signed with (docs/security.md); unset: one generated once
    # and kept in the write store, which every API process reads at start.
    consistency_token_secret: SecretStr | None = None

    # Who may do what (docs/security.md). With neither a secret nor a JWKS URL the service
    # runs open: everyone is an admin. Allowed on a loopback address (local use), elsewhere
    # only when asked for by name; it says so at every start.
    allow_open_access: bool = False
    jwt_secret: SecretStr | None = None  # HS256
    jwt_jwks_url: str | None = None  # RS256/ES256 keys from an identity provider, https only
    jwt_jwks_cache_s: float = Field(300.0, gt=0, le=86_400)  # a fetched key set's lifespan
    jwt_audience: str | None = Field(None, validate_default=True)
    jwt_issuer: str | None = Field(None, validate_default=True)
    jwt_leeway_s: float = Field(30.0, ge=0, le=600)

    # Limits on what one request may ask for.
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)
    max_query_depth: int = Field(12, ge=2, le=100)
    max_query_aliases: int = Field(30, ge=0, le=1000)
    max_query_tokens: int = Field(2000, ge=100, le=100_000)
    introspection: bool = True
    # Queries the compiled read path covers answered by one SQL statement each
    # (docs/architecture.md); false: every request through strawberry's executor.
    compiled_queries: bool = True
    # WebSocket subscribers of the same document, variables and audience share one result
    # stream, executed and serialized once (docs/architecture.md); false: one per subscriber.
    shared_subscriptions: bool = True

    @field_validator("jwt_secret", "consistency_token_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (an HMAC key as long as its hash)")
        return value

    @field_validator("jwt_jwks_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.strip().startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value.strip()

    @field_validator("jwt_audience", "jwt_issuer")
    @classmethod
    def _required_with_a_key_set(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = value.strip() if value else None
        if value is None and info.data.get("jwt_jwks_url"):
            raise ValueError(
                "must be set with SHOP_JWT_JWKS_URL: tokens from an identity provider must "
                "name this service (aud) and the provider (iss)"
            )
        return value

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, _POSTGRES_SCHEMES)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, _REDIS_SCHEMES)

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_needs_a_node_url(cls, value: bool, info: ValidationInfo) -> bool:
        url = info.data.get("redis_url")
        if value and (url is None or url.startswith("unix://")):
            raise ValueError("needs SHOP_REDIS_URL=redis://host:port/0 naming a cluster node")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug")
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(levels)}")
        return value.lower()

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _open_only_on_purpose(
        cls, data: object, handler: ModelWrapValidatorHandler[Settings]
    ) -> Settings:
        settings = handler(data)
        if settings.open_by_default:
            blank = [name for name in _CREDENTIALS if _blank(data, name)]
            if blank or not is_loopback(settings.host):
                raise ValueError(_open_access_refusal(settings.host, blank))
        return settings

    @property
    def open_access(self) -> bool:
        """True when no way to check credentials is configured: everyone is an admin."""
        return self.jwt_secret is None and self.jwt_jwks_url is None

    @property
    def open_by_default(self) -> bool:
        """Open without being asked to by name: allowed for callers on this machine only."""
        return self.open_access and not self.allow_open_access

    @property
    def embedded(self) -> bool:
        """True when at least one store is served by the embedded servers."""
        return None in (self.database_url, self.read_database_url, self.redis_url)


@functools.lru_cache(maxsize=1024)  # asked per request by the compiled read path
def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host`: 127.0.0.0/8, ::1 or localhost."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost may resolve to anything
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


_CREDENTIALS = ("jwt_secret", "jwt_jwks_url")


def _blank(data: object, name: str) -> bool:
    """Whether a credentials setting was given but empty (an unfilled template, say)."""
    value = data.get(name) if isinstance(data, dict) else None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and not value.strip()


def _open_access_refusal(host: str, blank: list[str]) -> str:
    why = (
        " and ".join(f"SHOP_{name.upper()}" for name in blank)
        + (" is" if len(blank) == 1 else " are")
        + " set but empty"
        if blank
        else f"SHOP_HOST={host!r} is not a loopback address"
    )
    return (
        f"{why}, and with neither SHOP_JWT_SECRET nor SHOP_JWT_JWKS_URL every caller would be "
        "an admin: set one of them (docs/security.md), or set SHOP_ALLOW_OPEN_ACCESS=true to "
        "serve open on purpose"
    )


def _check_scheme(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None or not value.strip():
        return None
    scheme, sep, _ = value.partition("://")
    if not sep or scheme not in schemes:
        raise ValueError(
            f"must be a URL starting with one of {', '.join(s + '://' for s in schemes)}"
        )
    return value.strip()


# A URL's password: from the user name's colon to the token's last "@", which may be in the
# password itself; redacting a little too much is the safe side.
_URL_PASSWORD = re.compile(r"(?P<user>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):\S*@")


def redacted(text: str) -> str:
    """The text with the password of every URL in it shown as ***."""
    return _URL_PASSWORD.sub(r"\g<user>:***@", text)


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning pydantic's report into one clear message per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors():
            if not item["loc"]:  # a rule on several settings names them itself
                problems.append(item["msg"].removeprefix("Value error, "))
                continue
            name = "SHOP_" + "_".join(str(part) for part in item["loc"]).upper()
            given = "<hidden>" if "SECRET" in name else redacted(repr(item.get("input")))
            problems.append(f"{name}={given}: {item['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems)) from None
