"""Settings from the environment (CONTRACT: DATABASE_URL, REDIS_URL, IMAP_URL, SMTP_URL,
PURCHASESHARE_DATA_DIR, SECRET_KEY) plus the knobs operators tune. One `Settings` object,
read once per process by `get_settings()`; tests build their own and pass it around.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default=Path("./purchaseshare-data"), alias="PURCHASESHARE_DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")  # None: SQLite in data_dir
    redis_url: str | None = Field(default=None, alias="REDIS_URL")  # None: actors run in-process
    imap_url: str | None = Field(default=None, alias="IMAP_URL")
    smtp_url: str | None = Field(default=None, alias="SMTP_URL")  # None: outgoing mail goes to the outbox table
    secret_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32), alias="SECRET_KEY")

    # The address users forward to; a user's secret plus-address is local+TOKEN@domain.
    inbox_address: str = Field(default="receipts@purchaseshare.localhost", alias="PURCHASESHARE_INBOX")
    # From-based attribution trusts Authentication-Results only from this server (RFC 8601 authserv-id).
    authserv_id: str | None = Field(default=None, alias="PURCHASESHARE_AUTHSERV_ID")
    # When on, a verified sender address alone is not enough: dkim/spf/dmarc must pass for its domain.
    require_sender_auth: bool = Field(default=True, alias="PURCHASESHARE_REQUIRE_SENDER_AUTH")
    # Raw mail kept until the user deletes it (None), or purged N days after a successful parse.
    raw_retention_days: int | None = Field(default=None, alias="PURCHASESHARE_RAW_RETENTION_DAYS")

    # A CA bundle to trust for imaps:// (a self-hosted server with its own certificate); None: the system's.
    imap_ca_file: str | None = Field(default=None, alias="PURCHASESHARE_IMAP_CAFILE")
    imap_processed_folder: str = Field(default="Processed", alias="PURCHASESHARE_IMAP_PROCESSED")
    imap_failed_folder: str = Field(default="Failed", alias="PURCHASESHARE_IMAP_FAILED")
    imap_idle_seconds: float = Field(default=600.0, alias="PURCHASESHARE_IMAP_IDLE_SECONDS")  # re-IDLE every ~10 min
    imap_poll_seconds: float = Field(default=30.0, alias="PURCHASESHARE_IMAP_POLL_SECONDS")  # without IDLE
    # A raw email still `received` this long after it was queued is queued again (lost queue message).
    requeue_after_seconds: float = Field(default=120.0, alias="PURCHASESHARE_REQUEUE_AFTER_SECONDS")
    max_attempts: int = Field(default=5, alias="PURCHASESHARE_MAX_ATTEMPTS")
    # Session cookies only over HTTPS. `serve` turns this on unless set (false only for a plain-http
    # setup); the demo on 127.0.0.1 is plain HTTP and keeps it off.
    secure_cookies: bool = Field(default=False, alias="PURCHASESHARE_SECURE_COOKIES")
    # Proxies whose X-Forwarded-For/-Proto are believed (uvicorn's forwarded_allow_ips: addresses,
    # networks, comma-separated, or "*"). Empty: none, the client address is the peer's.
    trusted_proxies: str = Field(default="", alias="PURCHASESHARE_TRUSTED_PROXIES")
    # Host names the site answers to besides the base URL's (comma-separated); `serve` refuses other
    # Host headers, so no link or redirect can be built from an attacker's Host.
    allowed_hosts: str = Field(default="", alias="PURCHASESHARE_ALLOWED_HOSTS")
    check_host: bool = Field(default=False, alias="PURCHASESHARE_CHECK_HOST")  # on in `serve`
    # The site's public base URL, for links in mail, feeds and Open Graph tags.
    base_url: str = Field(default="http://127.0.0.1:8000", alias="PURCHASESHARE_BASE_URL")
    # Memory for repeat views of public pages and feeds, per web process (web/page_cache.py); 0 = off.
    page_cache_mb: int = Field(default=32, ge=0, alias="PURCHASESHARE_PAGE_CACHE_MB")
    # Raw mail a user may keep stored (sum of their emails' sizes); mail beyond it is refused on
    # upload, and kept as `failed` without its bytes when it arrives by mail (purchaseshare.quota).
    user_quota_mb: int = Field(default=500, ge=1, alias="PURCHASESHARE_USER_QUOTA_MB")
    # One upload request at most (all its files); a file is also at most pipeline.MAX_BYTES.
    upload_max_mb: int = Field(default=100, ge=1, alias="PURCHASESHARE_UPLOAD_MAX_MB")
    # Account exports built at once per web process (each holds at most one raw email in memory).
    max_concurrent_exports: int = Field(default=2, ge=1, alias="PURCHASESHARE_MAX_CONCURRENT_EXPORTS")
    # The image proxy (/img) never connects to private, loopback or link-local addresses. FOR TESTS
    # ONLY: comma-separated networks exempted from that block, and a CA to trust for their https.
    image_proxy_allow: str = Field(default="", alias="PURCHASESHARE_IMAGE_PROXY_ALLOW")
    image_proxy_ca_file: str | None = Field(default=None, alias="PURCHASESHARE_IMAGE_PROXY_CAFILE")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Heroku-style URLs name no driver; psycopg 3 is the one installed.
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgres://")
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            return url
        return f"sqlite:///{(self.data_dir / 'purchaseshare.db').resolve()}"

    def host_names(self) -> list[str]:
        """The base URL's host, loopback (health checks on the machine) and PURCHASESHARE_ALLOWED_HOSTS."""
        from urllib.parse import urlsplit

        base = urlsplit(self.base_url).hostname
        extra = [name.strip().lower() for name in self.allowed_hosts.split(",") if name.strip()]
        return list(dict.fromkeys([*([base] if base else []), "localhost", "127.0.0.1", *extra]))

    @property
    def inbox_local(self) -> str:
        return self.inbox_address.rsplit("@", 1)[0].lower()

    @property
    def inbox_domain(self) -> str:
        return self.inbox_address.rsplit("@", 1)[-1].lower()

    def forwarding_address(self, token: str) -> str:
        return f"{self.inbox_local}+{token}@{self.inbox_domain}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
