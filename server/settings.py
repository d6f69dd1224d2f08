"""Settings: read once from environment variables (CLI flags override them), then frozen.

Every setting is listed in `SETTINGS` with its environment variable, default and meaning; the
README's configuration table is checked against that list by the tests, so the two cannot drift.
Secrets are never given a default: when `SECRET_KEYS` is unset, a random key is generated once
and kept in a file beside the database with mode 0600.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import secrets
import stat
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.domain import sealing
from server.domain.errors import PetitionWidgetError
from server.store.engine import UnknownDatabase, default_key_file, is_local, normalise_url

logger = logging.getLogger("petition_widget")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True)
class Setting:
    env: str
    default: str
    help: str


SETTINGS: dict[str, Setting] = {
    s.env: s
    for s in [
        Setting(
            "DATABASE_URL",
            "sqlite:///petition-widget.db",
            "Where signatures live: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` "
            "or `postgresql://user:pass@host:5432/db`.",
        ),
        Setting(
            "SECRET_KEYS",
            "",
            "Comma-separated keys that sign form tokens and sessions: the first signs, all "
            "verify (rotation). Unset: a key is generated and kept in `SECRET_KEY_FILE`.",
        ),
        Setting(
            "SECRET_KEY_FILE",
            "",
            "Where a generated key is kept (mode 0600). Default: beside the SQLite database, "
            "`<database>.key`; `petition-widget.key` in the working directory for PostgreSQL.",
        ),
        Setting(
            "BASE_URL",
            "",
            "The public URL of this server, used in embed snippets and share links. "
            "Default: `http://HOST:PORT`.",
        ),
        Setting("HOST", "127.0.0.1", "Address `serve` listens on."),
        Setting("PORT", "8000", "Port `serve` listens on."),
        Setting("WORKERS", "1", "uvicorn worker processes for `serve`."),
        Setting(
            "TOKEN_LIFETIME",
            "7200",
            "Seconds a form token stays valid; the widget fetches a new one by itself.",
        ),
        Setting(
            "TOKEN_MIN_AGE",
            "3",
            "Seconds a form token must exist before a signature is accepted (faster is a bot).",
        ),
        Setting(
            "RATE_SIGN_PER_MINUTE",
            "120",
            "Signatures per minute accepted from one client address on one petition, with "
            "an equal burst; 0 disables.",
        ),
        Setting(
            "RATE_CLIENT_PER_MINUTE",
            "600",
            "Requests per minute that create tokens or signatures from one client address "
            "over all petitions; 0 disables.",
        ),
        Setting(
            "RATE_NET_PER_MINUTE",
            "60",
            "Signatures per minute counted from one IPv4 /24 or IPv6 /48 on one petition, "
            "over any five minutes (300), all of which may come at once; beyond it a "
            "signature is quarantined, never refused (carrier NAT and VPN exits put many "
            "honest signers in one network: docs/privacy.md gives the figures). 0 disables.",
        ),
        Setting(
            "RATE_LOGIN_PER_MINUTE",
            "10",
            "Wrong dashboard keys (at sign-in and in `Authorization` headers) per minute from "
            "one client address; beyond, every key from it is answered `429` unchecked, for "
            "at most 60 s; 0 disables.",
        ),
        Setting(
            "TRUSTED_PROXIES",
            "",
            "Comma-separated addresses or networks of reverse proxies whose "
            "`X-Forwarded-For` is believed. Default: none.",
        ),
        Setting(
            "COUNT_REFRESH",
            "1.0",
            "Seconds between reads of the shared counters (other workers' and hosts' "
            "signatures, petition changes made by the CLI).",
        ),
        Setting(
            "BREAKDOWN_REFRESH",
            "30",
            "Seconds the public totals by country (`[public] by_country`) may lag behind the "
            "count: each process reads them again at most this often while the count moves.",
        ),
        Setting("MAX_BODY_BYTES", "16384", "Largest signature request body accepted."),
        Setting(
            "MAX_CONNECTIONS_PER_CLIENT",
            "256",
            "Open connections one client address may hold per worker; more are answered `429` "
            "at once. Reverse proxies in `TRUSTED_PROXIES` are exempt (a proxy's own limits "
            "apply there).",
        ),
        Setting(
            "CLIENT_TIMEOUT",
            "10",
            "Seconds a client has to send a whole request (headers and body) once it has "
            "started it or connected; slower clients get 408.",
        ),
        Setting(
            "HEADER_TIMEOUT",
            "5",
            "Seconds a client has to send a request's headers, once it has started it or "
            "connected; shorter than `CLIENT_TIMEOUT` (unset: 5, or half of a shorter "
            "`CLIENT_TIMEOUT`). Browsers send them in one packet; a client that drips them "
            "gets 408.",
        ),
        Setting(
            "MAX_CONNECTIONS_SENDING_HEADERS",
            "1024",
            "Connections per worker that have not finished sending a request's headers; past "
            "it, the one that has been at it longest is closed (408). A quarter of the "
            "worker's 4,096 connections: slow clients cannot take the rest.",
        ),
        Setting(
            "SQLITE_SYNCHRONOUS",
            "full",
            "SQLite `synchronous` pragma: `full` (an acknowledged signature survives a power "
            "loss) or `normal` (survives a process crash only).",
        ),
        Setting(
            "ACCESS_LOG",
            "0",
            "1 turns on uvicorn's access log. Off by default: it would store client addresses.",
        ),
        Setting("LOG_LEVEL", "info", "Log level of the server's own messages."),
        Setting(
            "SMTP_URL",
            "",
            "Where confirmation mails are sent: `smtp://user:pass@host:587` (STARTTLS is "
            "required, with a verified certificate, except to a loopback address) or "
            "`smtps://user:pass@host:465` (TLS from the start). Needed by petitions with "
            '`confirmation = "email"`.',
        ),
        Setting("MAIL_FROM", "", "The sender's address of confirmation mails."),
        Setting(
            "SEALING_PUBLIC_KEY",
            "",
            "The owner's public key (base64 of 32 bytes, from `petition-widget keys "
            "create-sealing`). Set: names, emails and comments are sealed for it, and only its "
            "secret key, kept off the server, opens them. Unset: they are stored in clear.",
        ),
        Setting(
            "EMAIL_HASH_KEY",
            "",
            "The key of the keyed hash (HMAC-SHA256) that stands for every email address. All "
            "workers and hosts must share it; never change it (every address could then sign "
            "again). Required with PostgreSQL; on SQLite generated once into "
            "`EMAIL_HASH_KEY_FILE`.",
        ),
        Setting(
            "EMAIL_HASH_KEY_FILE",
            "",
            "Where `EMAIL_HASH_KEY` is read from when it is unset (generated there, mode 0600, "
            "on SQLite). Default: beside the SQLite database, `<database>.email-hash-key`.",
        ),
        Setting(
            "CONFIRM_LIFETIME",
            "604800",
            "Seconds a confirmation link stays valid (7 days); a signature not confirmed by "
            "then is deleted with all its personal data.",
        ),
    ]
}


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str
    secret_keys: tuple[str, ...]
    base_url: str
    host: str
    port: int
    workers: int
    token_lifetime: int
    token_min_age: int
    rate_sign_per_minute: int
    rate_client_per_minute: int
    rate_net_per_minute: int
    rate_login_per_minute: int
    trusted_proxies: tuple[Network, ...]
    count_refresh: float
    max_body_bytes: int
    client_timeout: float
    max_connections_per_client: int
    header_timeout: float
    max_connections_sending_headers: int
    sqlite_synchronous: str
    access_log: bool
    log_level: str
    smtp_url: str = ""
    mail_from: str = ""
    confirm_lifetime: int = 604_800
    sealing_public_key: str = ""
    email_hash_key: str = dataclasses.field(default="", repr=False)  # "" only on PostgreSQL
    base_url_set: bool = False  # BASE_URL was given, not derived from HOST and PORT
    demo: bool = False
    breakdown_refresh: float = 30.0

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")


class SettingsError(PetitionWidgetError):
    """A setting has a value we cannot use; the message names the variable."""


def load(
    environ: Mapping[str, str] | None = None, *, generate: bool = True, **overrides: Any
) -> Settings:
    """Settings from `environ` (default: the process environment), then `overrides`.

    Overrides use the lower-case names (`database_url=...`); a `None` override is ignored so
    that CLI flags left unset fall through to the environment. With `generate=False` no key
    file is created (the offline commands, which must leave nothing behind): a key that is
    neither set nor kept in its file is then empty.
    """
    env = dict(os.environ if environ is None else environ)
    for name, value in overrides.items():
        if value is not None and name.upper() in SETTINGS:
            env[name.upper()] = str(value)
    raw = {name: env.get(name, s.default).strip() for name, s in SETTINGS.items()}

    database_url = _database_url(raw["DATABASE_URL"])
    host = raw["HOST"]
    port = _integer(raw, "PORT", minimum=0)
    keys = tuple(k.strip() for k in raw["SECRET_KEYS"].split(",") if k.strip())
    if not keys:
        key_file = _key_file(raw["SECRET_KEY_FILE"], database_url)
        if generate or key_file.exists():
            keys = (_generated_key(key_file),)
    client_timeout = _number(raw, "CLIENT_TIMEOUT", minimum=0.5)
    synchronous = raw["SQLITE_SYNCHRONOUS"].lower()
    if synchronous not in ("full", "normal"):
        raise SettingsError("SQLITE_SYNCHRONOUS must be 'full' or 'normal'")
    return Settings(
        database_url=database_url,
        secret_keys=keys,
        base_url=(raw["BASE_URL"] or f"http://{_url_host(host)}:{port}").rstrip("/"),
        host=host,
        port=port,
        workers=_integer(raw, "WORKERS", minimum=1),
        token_lifetime=_integer(raw, "TOKEN_LIFETIME", minimum=60),
        token_min_age=_integer(raw, "TOKEN_MIN_AGE", minimum=0),
        rate_sign_per_minute=_integer(raw, "RATE_SIGN_PER_MINUTE", minimum=0),
        rate_client_per_minute=_integer(raw, "RATE_CLIENT_PER_MINUTE", minimum=0),
        rate_net_per_minute=_integer(raw, "RATE_NET_PER_MINUTE", minimum=0),
        rate_login_per_minute=_integer(raw, "RATE_LOGIN_PER_MINUTE", minimum=0),
        trusted_proxies=parse_networks(raw["TRUSTED_PROXIES"]),
        count_refresh=_number(raw, "COUNT_REFRESH", minimum=0.05),
        breakdown_refresh=_number(raw, "BREAKDOWN_REFRESH", minimum=0.05),
        max_body_bytes=_integer(raw, "MAX_BODY_BYTES", minimum=1024),
        client_timeout=client_timeout,
        max_connections_per_client=_integer(raw, "MAX_CONNECTIONS_PER_CLIENT", minimum=0),
        header_timeout=_header_timeout(
            raw, client_timeout, given=bool(env.get("HEADER_TIMEOUT", "").strip())
        ),
        max_connections_sending_headers=_sending_headers(raw),
        sqlite_synchronous=synchronous,
        access_log=raw["ACCESS_LOG"].lower() in ("1", "true", "yes", "on"),
        log_level=raw["LOG_LEVEL"].lower(),
        smtp_url=_smtp_url(raw["SMTP_URL"]),
        mail_from=_mail_from(raw["MAIL_FROM"]),
        confirm_lifetime=_integer(raw, "CONFIRM_LIFETIME", minimum=600),
        sealing_public_key=_sealing_key(raw["SEALING_PUBLIC_KEY"]),
        email_hash_key=_email_hash_key(raw, database_url, generate=generate),
        base_url_set=bool(raw["BASE_URL"]),
        demo=bool(overrides.get("demo", False)),
    )


def header_timeout_default(client_timeout: float) -> float:
    """The header time when `HEADER_TIMEOUT` is unset (also read by `web.protocol`)."""
    return min(float(SETTINGS["HEADER_TIMEOUT"].default), client_timeout / 2)


CONNECTIONS_PER_WORKER = 4096  # uvicorn's `limit_concurrency` (`cli.serving.UVICORN_OPTIONS`)


def _header_timeout(raw: Mapping[str, str], client_timeout: float, *, given: bool) -> float:
    """`HEADER_TIMEOUT`; left unset with a `CLIENT_TIMEOUT` at or below its default, half of
    `CLIENT_TIMEOUT` (a short request time asks for shorter headers, not for an error)."""
    value = _number(raw, "HEADER_TIMEOUT", minimum=0.1)
    if not given:
        return header_timeout_default(client_timeout)
    if value >= client_timeout:
        raise SettingsError(
            f"HEADER_TIMEOUT ({value:g}) must be shorter than CLIENT_TIMEOUT ({client_timeout:g})"
        )
    return value


def _sending_headers(raw: Mapping[str, str]) -> int:
    value = _integer(raw, "MAX_CONNECTIONS_SENDING_HEADERS", minimum=1)
    if value >= CONNECTIONS_PER_WORKER:
        raise SettingsError(
            f"MAX_CONNECTIONS_SENDING_HEADERS must be below {CONNECTIONS_PER_WORKER}, the "
            "connections a worker takes: else slow clients can still fill it"
        )
    return value


def missing_for_confirmation(settings: Settings) -> list[str]:
    """The settings that mail confirmation needs and that are unset: links in mails are built
    on `BASE_URL`, mails leave through `SMTP_URL` from `MAIL_FROM`."""
    needed = {
        "SMTP_URL": settings.smtp_url,
        "MAIL_FROM": settings.mail_from,
        "BASE_URL": settings.base_url if settings.base_url_set else "",
    }
    return [name for name, value in needed.items() if not value]


def _smtp_url(url: str) -> str:
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise SettingsError("SMTP_URL has a port that is not a number") from None
    return url


def _mail_from(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if address and not (at and local and "." in domain and not any(c.isspace() for c in address)):
        raise SettingsError("MAIL_FROM must be an email address, like petitions@example.org")
    return address


def _database_url(url: str) -> str:
    try:
        return normalise_url(url)
    except UnknownDatabase as exc:
        raise SettingsError(str(exc)) from None


def _key_file(configured: str, database_url: str) -> Path:
    return Path(configured) if configured else default_key_file(database_url)


def _sealing_key(text: str) -> str:
    if text:
        try:
            sealing.parse_public_key(text)
        except sealing.BadKey as exc:
            raise SettingsError(f"SEALING_PUBLIC_KEY: {exc}") from None
    return text


MIN_HASH_KEY = 32  # characters of EMAIL_HASH_KEY: a guessable key would let a list be tested


def _email_hash_key(raw: Mapping[str, str], database_url: str, *, generate: bool) -> str:
    """`EMAIL_HASH_KEY`, or the key kept in its file, generated there on SQLite (one machine);
    "" on PostgreSQL without either (`serve` then refuses to start)."""
    key = raw["EMAIL_HASH_KEY"]
    configured = raw["EMAIL_HASH_KEY_FILE"]
    if not key and (configured or is_local(database_url)):
        path = Path(configured) if configured else _beside(database_url, ".email-hash-key")
        if not generate and not path.exists():
            return ""
        if is_local(database_url):
            key = _generated_key(path, "EMAIL_HASH_KEY")
        elif path.exists():
            key = path.read_text().strip()
        else:
            raise SettingsError(f"EMAIL_HASH_KEY_FILE {path} does not exist")
    if key and len(key) < MIN_HASH_KEY:
        raise SettingsError(f"EMAIL_HASH_KEY must be at least {MIN_HASH_KEY} characters")
    return key


def _beside(database_url: str, suffix: str) -> Path:
    key_file = default_key_file(database_url)
    return key_file.with_name(key_file.name.removesuffix(".key") + suffix)


def _generated_key(path: Path, setting: str = "SECRET_KEYS") -> str:
    """Read the key kept at `path`, or create it with mode 0600. The key itself is never logged."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileNotFoundError:
        raise SettingsError(
            f"cannot keep a generated {setting} in {path}: its folder does not exist "
            "(check DATABASE_URL, or set the key)"
        ) from None
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning("secret key file %s is readable by others (mode %o)", path, mode)
        key = path.read_text().strip()
        if not key:
            raise SettingsError(f"secret key file {path} is empty") from None
        return key
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    logger.warning(
        "%s is not set: generated a new secret key and saved it to %s (mode 0600). "
        "Keep that file, and a copy apart from the database's backups; set %s to share one "
        "key between hosts.",
        setting, path, setting,
    )  # fmt: skip
    return key


def _integer(raw: Mapping[str, str], name: str, *, minimum: int) -> int:
    try:
        value = int(raw[name])
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw[name]!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


def _number(raw: Mapping[str, str], name: str, *, minimum: float) -> float:
    try:
        value = float(raw[name])
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw[name]!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


def parse_networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in text.split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise SettingsError(f"TRUSTED_PROXIES: {exc}") from None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - we only build a URL from it
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
