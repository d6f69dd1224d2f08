"""Petitions: the campaign texts and settings, read from TOML files and checked before import.

A petition file holds the texts in one language (`lang`) and optional translations under
`[translations.LL]`; a translation may leave keys out, which then fall back to the original.
Everything here is pure: parsing and checking take text and return values or raise
`PetitionFileError` naming the file, the line and the field. Storing is `storage`'s job.
The format is documented in docs/petition-format.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
import tomllib
import zoneinfo
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from server.domain import i18n
from server.domain.errors import PetitionWidgetError
from server.domain.partners import CODE, Partner

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?")
_ORIGIN = re.compile(r"https?://(\*\.)?[a-z0-9.-]+(:\d{1,5})?")

STATUSES = ("open", "closed")
#: How a signature comes to count: once its signer confirms from a mail ("email", the default
#: for files imported since confirmation exists), or at once ("none").
CONFIRMATIONS = ("email", "none")
#: When a signature must carry a proof of work (`challenge`): never, when refusals show an
#: attack ("auto", the default), or always.
CHALLENGES = ("off", "auto", "on")
UPDATE_KINDS = ("update", "correction")
FIELD_MODES = {"country": ("required", "optional", "hidden"), "comment": ("optional", "hidden")}
#: Whether the form offers the box "Show my name on the list delivered to {target}"; hidden by
#: default, so that nobody is named on a delivered list without choosing it.
NAME_TO_TARGET = ("optional", "hidden")
MAX_GOAL = 1_000_000_000

# Longest text accepted per field, in characters: generous, but a widget must stay a widget.
_TEXT_LIMITS = {
    "title": 200,
    "summary": 1_000,
    "body": 20_000,
    "target": 200,
    "statement": 5_000,
    "legal_notice": 2_000,
    "organiser": 200,
}
_REQUIRED_TEXTS = ("title", "summary", "target", "statement")
# The mail a signer gets may be read by someone hostile to them: sender name and subject are
# neutral unless the file says otherwise (empty: the catalog's neutral wording).
_MAIL_LIMITS = {"from_name": 100, "subject": 150}
_TOP_KEYS = {
    "slug", "lang", "status", "goal", "share_url", "privacy_url", "form", "embed", "updates",
    "translations", "signing", "mail", "retention", "timezone", "auto_goal", "after_sign",
    "share_image", "public",
    *_TEXT_LIMITS,
}  # fmt: skip
#: The looks a widget may take: `theme` (light by default, so a dark-mode visitor on a light
#: partner page sees the light widget the partner chose; `auto` follows the visitor's system).
THEMES = ("light", "dark", "auto")
_CONFIG_NAME = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?")
_CONFIG_KEYS = ("name", "partner", "lang", "theme", "accent", "compact")
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}")
MAX_EMBED_CONFIGS = 50
#: Days signer data is kept after a petition closes, by default; 0 keeps it for ever.
RETENTION_DAYS = 180
MAX_RETENTION_DAYS = 36_500


class PetitionFileError(PetitionWidgetError):
    """A petition file cannot be imported. `str()` names the file, line and field."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source, self.line, self.message = source, line, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True)
class Update:
    date: datetime.date
    kind: str
    text: str


@dataclasses.dataclass(frozen=True)
class Texts:
    """Everything a signer reads, in one language. `body`, `statement` and update texts are
    Markdown (see `richtext`); the others are plain text."""

    title: str
    summary: str
    target: str
    statement: str
    body: str = ""
    legal_notice: str = ""
    organiser: str = ""
    updates: tuple[Update, ...] = ()
    mail_from_name: str = ""  # the sender's name in confirmation mails ("" : neutral default)
    mail_subject: str = ""  # their subject ("" : neutral default)


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """A named snippet for one partner (`[[embed.configs]]`), offered by the dashboard's
    snippet generator so that each partner gets the look agreed with it."""

    name: str
    partner: str = ""
    lang: str = ""
    theme: str = "light"
    accent: str = ""
    compact: bool = False


@dataclasses.dataclass(frozen=True)
class Petition:
    slug: str
    lang: str
    status: str
    goal: int
    texts: Mapping[str, Texts]
    country: str = "optional"
    comment: str = "hidden"
    frame_ancestors: tuple[str, ...] = ()
    share_url: str = ""
    privacy_url: str = ""
    # A stored petition from before confirmation existed has no such key: it keeps counting at
    # once until its file is imported again (the file's default is "email").
    confirmation: str = "none"
    # Days after closing until signer data is deleted (`store/retention`); 0: never.
    retention_days: int = RETENTION_DAYS
    # When a signature must carry a proof of work (`domain/challenge`): off, auto or on.
    challenge: str = "auto"
    # The shown goal climbs by steps once the count reaches it (`domain/goals`).
    auto_goal: bool = False
    # `[after_sign] url`: a "Continue" page (a donation ask, a next action) after signing.
    after_sign_url: str = ""
    # An https image for link previews (`og:image` on the share page), never loaded by us.
    share_image: str = ""
    embed_configs: tuple[EmbedConfig, ...] = ()
    # The IANA time zone of the dashboard's charts: their days, hours and labels (`charts`).
    timezone: str = "UTC"
    # "optional": the form offers the box that puts the signer's name on the delivered list.
    name_to_target: str = "hidden"
    # `[public] by_country`: the public API shows the totals by country (`breakdowns`).
    public_by_country: bool = False

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def needs_confirmation(self) -> bool:
        return self.confirmation == "email"

    @functools.cached_property  # asked on every request; a petition never changes once loaded
    def languages(self) -> tuple[str, ...]:
        return (self.lang, *sorted(k for k in self.texts if k != self.lang))

    def in_language(self, lang: str) -> Texts:
        return self.texts.get(lang) or self.texts[self.lang]

    def to_document(self) -> dict[str, Any]:
        """A JSON-ready form of the petition, as stored in the database."""
        doc = dataclasses.asdict(self)
        doc["texts"] = {
            lang: {
                **dataclasses.asdict(t),
                "updates": [
                    {"date": u.date.isoformat(), "kind": u.kind, "text": u.text} for u in t.updates
                ],
            }
            for lang, t in self.texts.items()
        }
        doc["frame_ancestors"] = list(self.frame_ancestors)
        doc["embed_configs"] = [dataclasses.asdict(c) for c in self.embed_configs]
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Petition:
        texts = {
            lang: Texts(
                **{
                    **t,
                    "updates": tuple(
                        Update(datetime.date.fromisoformat(u["date"]), u["kind"], u["text"])
                        for u in t["updates"]
                    ),
                }
            )
            for lang, t in doc["texts"].items()
        }
        configs = tuple(EmbedConfig(**c) for c in doc.get("embed_configs", ()))
        return cls(
            **{
                **doc,
                "texts": texts,
                "frame_ancestors": tuple(doc["frame_ancestors"]),
                "embed_configs": configs,
            }
        )


def _known_zone(name: str) -> bool:
    """Whether `name` is a time zone of the IANA database (Python's `zoneinfo`, from the system
    or the `tzdata` package). A path or a name with dots is refused before any file is read."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}", name):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def load_file(path: str | Path) -> Petition:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PetitionFileError(str(path), f"cannot read the file ({exc})") from None
    return parse(text, source=str(path))


def parse(text: str, source: str = "<petition>") -> Petition:
    """Check a petition file's text and return the petition it describes."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise PetitionFileError(source, f"not valid TOML: {exc}", line) from None
    return _Reader(source, text).petition(data)


class _Reader:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()

    def one_of(
        self, table: dict[str, Any], key: str, choices: Sequence[str], default: str, section: str
    ) -> str:
        """`[section] key`, taken out of `table`: one of `choices`, `default` when absent."""
        value = table.pop(key, default)
        if value not in choices:
            raise self.fail(f"{section}.{key} must be one of {', '.join(choices)}", key, section)
        return str(value)

    def fail(
        self, message: str, key: str = "", section: str = "", index: int = 0
    ) -> PetitionFileError:
        return PetitionFileError(self.source, message, self._line_of(key, section, index))

    def _line_of(self, key: str, section: str, index: int = 0) -> int | None:
        """The line where `key` is set (inside `[section]`, or the index-th `[[section]]`, if
        given), or the section's header when no key is given: tomllib gives no positions, so we
        look for them."""
        start = None
        if section:
            header = re.compile(rf"^\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*(#.*)?$")
            starts = [i for i, ln in enumerate(self.lines) if header.match(ln)]
            start = starts[min(index, len(starts) - 1)] if starts else None
        if not key:
            return None if start is None else start + 1
        setting = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start or 0, len(self.lines)):
            if setting.match(self.lines[i]):
                return i + 1
        return None if start is None else start + 1

    def petition(self, data: dict[str, Any]) -> Petition:
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise self.fail(f"unknown key '{unknown[0]}'", unknown[0])
        slug = self.string(data, "slug", required=True)
        if not SLUG.fullmatch(slug):
            raise self.fail(
                "slug must be 1-80 lower-case letters, digits and hyphens, "
                "not starting or ending with a hyphen",
                "slug",
            )
        lang = self.language(data.get("lang", i18n.DEFAULT_LANGUAGE), "lang")
        status = self.string(data, "status") or "open"
        if status not in STATUSES:
            raise self.fail(f"status must be one of {', '.join(STATUSES)}", "status")
        goal = data.get("goal")
        if isinstance(goal, bool) or not isinstance(goal, int) or not 0 < goal <= MAX_GOAL:
            raise self.fail(f"goal must be a whole number from 1 to {MAX_GOAL:,}", "goal")

        texts = {lang: self.texts(data, required=True, section="")}
        translations = data.get("translations", {})
        if not isinstance(translations, dict):
            raise self.fail("translations must be a table of languages", "translations")
        for other, table in translations.items():
            section = f"translations.{other}"
            self.language(other, "", section=section)
            if other == lang:
                raise self.fail(f"translation '{other}' repeats the file's own lang", other)
            if not isinstance(table, dict):
                raise self.fail(f"{section} must be a table", other)
            texts[other] = self.translation(table, texts[lang], section)

        signing = self.table(data, "signing")
        confirmation = self.one_of(signing, "confirmation", CONFIRMATIONS, "email", "signing")
        challenge = self.one_of(signing, "challenge", CHALLENGES, "auto", "signing")
        if signing:
            key = next(iter(signing))
            raise self.fail(f"unknown key '{key}' in [signing]", key, "signing")
        retention = self.table(data, "retention")
        days = retention.pop("days", RETENTION_DAYS)
        if (
            isinstance(days, bool)
            or not isinstance(days, int)
            or not 0 <= days <= MAX_RETENTION_DAYS
        ):
            raise self.fail(
                f"retention.days must be a whole number of days from 0 (keep for ever) to "
                f"{MAX_RETENTION_DAYS:,}",
                "days",
                "retention",
            )
        if retention:
            key = next(iter(retention))
            raise self.fail(f"unknown key '{key}' in [retention]", key, "retention")
        form = self.table(data, "form")
        embed = self.table(data, "embed")
        fields = {}
        for name, modes in FIELD_MODES.items():
            fields[name] = self.one_of(form, name, modes, modes[1], "form")
        name_to_target = self.one_of(form, "name_to_target", NAME_TO_TARGET, "hidden", "form")
        if form:
            raise self.fail(f"unknown key '{next(iter(form))}' in [form]", next(iter(form)))
        public = self.table(data, "public")
        by_country = public.pop("by_country", False)
        if not isinstance(by_country, bool):
            raise self.fail("public.by_country must be true or false", "by_country", "public")
        if public:
            key = next(iter(public))
            raise self.fail(f"unknown key '{key}' in [public]", key, "public")
        ancestors = embed.pop("frame_ancestors", [])
        configs = self.embed_configs(embed.pop("configs", []), (lang, *translations))
        if embed:
            raise self.fail(f"unknown key '{next(iter(embed))}' in [embed]", next(iter(embed)))
        if not isinstance(ancestors, list) or not all(
            isinstance(o, str) and _ORIGIN.fullmatch(o) for o in ancestors
        ):
            raise self.fail(
                "embed.frame_ancestors must be a list of origins like "
                "'https://example.org' or 'https://*.example.org'",
                "frame_ancestors",
                "embed",
            )
        timezone = self.string(data, "timezone") or "UTC"
        if not _known_zone(timezone):
            raise self.fail(
                f"timezone must be an IANA time zone name like 'Europe/Moscow' or 'UTC', "
                f"not '{timezone[:60]}'",
                "timezone",
            )
        return Petition(
            slug=slug,
            lang=lang,
            status=status,
            goal=goal,
            texts=texts,
            country=fields["country"],
            comment=fields["comment"],
            frame_ancestors=tuple(ancestors),
            share_url=self.url(data, "share_url"),
            privacy_url=self.url(data, "privacy_url"),
            confirmation=confirmation,
            retention_days=days,
            timezone=timezone,
            auto_goal=self.flag(data, "auto_goal"),
            after_sign_url=self.after_sign(data),
            share_image=self.url(data, "share_image", https=True),
            embed_configs=configs,
            challenge=challenge,
            name_to_target=name_to_target,
            public_by_country=by_country,
        )

    def flag(self, data: Mapping[str, Any], key: str, section: str = "") -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false", key, section)
        return value

    def after_sign(self, data: Mapping[str, Any]) -> str:
        table = self.table(data, "after_sign")
        url = self.url(table, "url", section="after_sign", https=True)
        table.pop("url", None)
        if table:
            key = next(iter(table))
            raise self.fail(f"unknown key '{key}' in [after_sign]", key, "after_sign")
        return url

    def embed_configs(self, items: Any, languages: tuple[str, ...]) -> tuple[EmbedConfig, ...]:
        where = "embed.configs"
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise self.fail("embed.configs must be an array of tables ([[embed.configs]])",
                            "configs", "embed")  # fmt: skip
        if len(items) > MAX_EMBED_CONFIGS:
            raise self.fail(f"at most {MAX_EMBED_CONFIGS} [[embed.configs]]", "", where)
        found: list[EmbedConfig] = []
        for n, item in enumerate(items):
            unknown = sorted(set(item) - set(_CONFIG_KEYS))
            if unknown:
                raise self.fail(f"unknown key '{unknown[0]}' in [[{where}]] number {n + 1}",
                                unknown[0], where, n)  # fmt: skip
            name = item.get("name")
            if not isinstance(name, str) or not _CONFIG_NAME.fullmatch(name):
                raise self.fail(
                    f"{where}[{n}].name must be 1-40 lower-case letters, digits, '-' and '_'",
                    "name", where, n,
                )  # fmt: skip
            if any(c.name == name for c in found):
                raise self.fail(f"{where}[{n}].name '{name}' is used twice", "name", where, n)
            partner = item.get("partner", "")
            if not isinstance(partner, str) or (partner and not CODE.fullmatch(partner)):
                raise self.fail(f"{where}[{n}].partner must be a partner code like 'ngo-a'",
                                "partner", where, n)  # fmt: skip
            lang = item.get("lang", "")
            if lang != "" and lang not in languages:
                raise self.fail(
                    f"{where}[{n}].lang must be one of the petition's languages "
                    f"({', '.join(languages)})",
                    "lang", where, n,
                )  # fmt: skip
            theme = item.get("theme", "light")
            if theme not in THEMES:
                raise self.fail(f"{where}[{n}].theme must be one of {', '.join(THEMES)}",
                                "theme", where, n)  # fmt: skip
            accent = item.get("accent", "")
            if not isinstance(accent, str) or (accent and not _HEX_COLOUR.fullmatch(accent)):
                raise self.fail(f"{where}[{n}].accent must be a colour like '#1f5fbf'",
                                "accent", where, n)  # fmt: skip
            compact = item.get("compact", False)
            if not isinstance(compact, bool):
                raise self.fail(f"{where}[{n}].compact must be true or false",
                                "compact", where, n)  # fmt: skip
            found.append(EmbedConfig(name, partner, lang, theme, accent, compact))
        return tuple(found)

    def translation(self, table: dict[str, Any], original: Texts, section: str) -> Texts:
        allowed = {*_TEXT_LIMITS, "updates", "mail"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(f"unknown key '{unknown[0]}' in [{section}]", unknown[0], section)
        own = self.texts(table, required=False, section=section)
        by_key = {(u.date, u.kind): u for u in own.updates}
        for key in by_key:
            if key not in {(u.date, u.kind) for u in original.updates}:
                raise self.fail(
                    f"[{section}] translates an update ({key[0]}, {key[1]}) that the "
                    "petition does not have",
                    "date",
                    f"{section}.updates",
                )
        values = {name: getattr(own, name) or getattr(original, name) for name in _TEXT_LIMITS}
        updates = tuple(by_key.get((u.date, u.kind), u) for u in original.updates)
        return Texts(
            **values,
            updates=updates,
            mail_from_name=own.mail_from_name or original.mail_from_name,
            mail_subject=own.mail_subject or original.mail_subject,
        )

    def texts(self, data: dict[str, Any], *, required: bool, section: str) -> Texts:
        values = {
            name: self.string(data, name, required=required and name in _REQUIRED_TEXTS,
                              limit=limit, section=section)
            for name, limit in _TEXT_LIMITS.items()
        }  # fmt: skip
        where = f"{section}.mail" if section else "mail"
        mail = self.table(data, "mail", section=section)
        unknown = sorted(set(mail) - set(_MAIL_LIMITS))
        if unknown:
            raise self.fail(f"unknown key '{unknown[0]}' in [{where}]", unknown[0], where)
        from_name, subject = (
            self.string(mail, name, limit=limit, section=where)
            for name, limit in _MAIL_LIMITS.items()
        )
        return Texts(
            **values,
            updates=self.updates(data.get("updates", []), section),
            mail_from_name=from_name,
            mail_subject=subject,
        )

    def updates(self, items: Any, section: str) -> tuple[Update, ...]:
        where = f"{section}.updates" if section else "updates"
        if not isinstance(items, list):
            raise self.fail("updates must be an array of tables ([[updates]])", "updates")
        result = []
        for item in items:
            if not isinstance(item, dict) or set(item) - {"date", "kind", "text"}:
                raise self.fail("each update has only date, kind and text", "date", where)
            date = item.get("date")
            if not isinstance(date, datetime.date) or isinstance(date, datetime.datetime):
                raise self.fail("update date must be a date like 2022-04-21", "date", where)
            kind = item.get("kind", "update")
            if kind not in UPDATE_KINDS:
                raise self.fail(f"update kind must be one of {', '.join(UPDATE_KINDS)}",
                                "kind", where)  # fmt: skip
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                raise self.fail("update text must be non-empty text", "text", where)
            result.append(Update(date, kind, text.strip()))
        # Newest first: that is how readers expect a campaign's updates.
        return tuple(sorted(result, key=lambda u: u.date, reverse=True))

    def string(
        self,
        data: Mapping[str, Any],
        key: str,
        *,
        required: bool = False,
        limit: int = 1_000,
        section: str = "",
    ) -> str:
        value = data.get(key, "")
        if not isinstance(value, str):
            raise self.fail(f"{key} must be text", key, section)
        value = value.strip()
        if required and not value:
            raise self.fail(f"{key} is required", key, section)
        if len(value) > limit:
            raise self.fail(f"{key} is longer than {limit:,} characters", key, section)
        return value

    def url(
        self, data: Mapping[str, Any], key: str, *, section: str = "", https: bool = False
    ) -> str:
        value = self.string(data, key, section=section)
        scheme = "https" if https else "https?"
        if value and not re.fullmatch(scheme + r"://[^\s<>\"'`]+", value):
            name = f"{section}.{key}" if section else key
            kind = "an https" if https else "an http(s)"
            raise self.fail(f"{name} must be {kind} URL", key, section)
        return value

    def language(self, value: Any, key: str, section: str = "") -> str:
        if not isinstance(value, str) or value not in i18n.LANGUAGES:
            known = ", ".join(sorted(i18n.LANGUAGES))
            raise self.fail(f"unknown language {value!r} (known: {known})", key, section)
        return value

    def table(self, data: Mapping[str, Any], key: str, section: str = "") -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            where = f"{section}.{key}" if section else key
            raise self.fail(f"{key} must be a table ([{where}])", key, section)
        return dict(value)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A petition as this server publishes it: its texts, and the goal, status and partners
    that the dashboard and the CLI may change after import."""

    id: int
    slug: str
    petition: Petition
    goal: int
    status: str
    updated_at: int
    partners: dict[str, Partner]  # by code
    # The highest goal an `auto_goal` petition has shown, as stored (`domain/goals`).
    shown_goal: int = 0

    @property
    def is_open(self) -> bool:
        return self.status == "open"
