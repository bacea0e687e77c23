"""Settings from ``MAILER_*`` environment variables and ``.env``.

Nothing is read at import time: call :func:`get_settings` (cached) where a value is needed, so
tests can point mailer at another database or outbox by setting the environment first and calling
``get_settings.cache_clear()``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from mailer.errors import ConfigError
from mailer.figures import NEAR_CLIP_BYTES

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def shipped_dir(name: str) -> Path:
    """``templates`` or ``examples`` as this mailer was installed with them.

    A built wheel carries copies inside the package (setup.py's build step puts them there); an
    editable install from a checkout reads the folders at the top of the checkout.
    """
    inside_package = PACKAGE_DIR / name
    return inside_package if inside_package.is_dir() else PROJECT_ROOT / name


DEFAULT_TEMPLATES_DIR = shipped_dir("templates")
# Installed, the example issue (644) ships too, so a fresh install can render it; production
# points MAILER_ISSUES_DIR at the TWiR content folder (deploy/mailer.env does).
DEFAULT_ISSUES_DIR = shipped_dir("examples")

# The secret shipped in .env.example and the development default of earlier versions. Nothing
# signs or checks a link with either: anyone who has read this file could forge unsubscribe
# tokens. (DEV_SECRET_KEY stays known so forget hashes made with it are still honoured.)
EXAMPLE_SECRET_KEY = "change-me-to-a-long-random-string"
DEV_SECRET_KEY = "insecure-development-key-do-not-use-in-production"
INSECURE_SECRET_KEYS = frozenset({EXAMPLE_SECRET_KEY, DEV_SECRET_KEY})
# Every credential value the project shows anywhere (deploy/mailer.env, .env.example, README,
# docs/): public, so refused as a secret key, an /admin password and an /admin token alike.
# tests/test_admin_credentials.py scans those files and fails on a value not refused.
EXAMPLE_CREDENTIALS = frozenset({
    *INSECURE_SECRET_KEYS,
    "change-me-too",  # deploy/mailer.env's admin password before issue 19
    "a-long-password",  # .env.example
    "a-long-random-token",  # .env.example
})
MIN_SECRET_KEY_LENGTH = 16
MIN_ADMIN_PASSWORD_LENGTH = 12
MIN_ADMIN_TOKEN_LENGTH = 32
# A crude floor on guessability: "kkkk…" or "abcdabcd…" has the length but not the variety.
# secrets.token_urlsafe draws from 64 symbols, so even its 16-character keys clear this.
MIN_DISTINCT_CHARACTERS = 8
GENERATE_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


ENV_FILE = ".env"
# Transports whose mail reaches real mailboxes: their links must be https (see require_https_links).
REAL_TRANSPORTS = ("ses", "smtp")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _web(example: str, bare: bool = False):
    return lambda url: check_web_url(url, example=example, bare=bare)


# Each URL setting and its check (below): a malformed one stops every command when settings load.
_URL_SETTINGS = {
    "base_url": _web("https://twir.example.org", bare=True),
    "allowed_return_urls": _web("https://this-week-in-rust.org/", bare=True),
    "ses_endpoint_url": _web("https://email.us-east-1.amazonaws.com"),
    "source_feed_url": _web("https://this-week-in-rust.org/atom.xml"),
    "source_pds_url": _web("https://pds.example.org"),
    "smtp_url": lambda url: check_smtp_url(url),
    "source_git_url": lambda url: check_git_url(url),
}


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def _duration_seconds(text: str) -> float:
    """``90s``, ``15m``, ``1h`` or a bare number of seconds, in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot read {text!r} as a duration (examples: 90s, 15m, 1h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MAILER_", env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore",
        populate_by_name=True,
    )

    # -- issues and rendering ------------------------------------------------------------------
    issues_dir: Path = DEFAULT_ISSUES_DIR
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    site_url: str = "https://this-week-in-rust.org"
    newsletter_name: str = "This Week in Rust"
    sender_line: str = (
        "You receive This Week in Rust because you subscribed to it. "
        "This Week in Rust, a community newsletter about the Rust programming language."
    )

    # -- storage -------------------------------------------------------------------------------
    database_url: str = "sqlite:///subscribers.db"

    # -- identity and public URLs --------------------------------------------------------------
    from_: str = Field(default="This Week in Rust <newsletter@example.org>", alias="MAILER_FROM")
    reply_to: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    # No default: a link signed with a built-in key fails at the production web app.
    secret_key: str = ""
    list_id: str = "This Week in Rust <newsletter.this-week-in-rust.example.org>"
    unsubscribe_mailto: str | None = None
    feedback_id_sender: str = "twir"

    # -- transport -----------------------------------------------------------------------------
    transport: Literal["outbox", "ses", "smtp"] = "outbox"
    outbox_dir: Path = Path("outbox")
    ses_region: str = "us-east-1"
    ses_configuration_set: str | None = None
    ses_endpoint_url: str | None = None
    # SendBulkEmail, up to 50 readers a call (auto: where the account has it, else one by one)
    ses_bulk: Literal["auto", "off"] = "auto"
    smtp_url: str | None = None

    # -- sending -------------------------------------------------------------------------------
    send_rate: float = Field(default=14.0, gt=0)
    send_concurrency: int = Field(default=16, ge=1, le=256)

    # -- subscriptions and the public web app --------------------------------------------------
    confirm_token_max_age: int = Field(default=7 * 24 * 3600, gt=0)  # seconds
    confirm_mail_interval: int = Field(default=3600, ge=0)  # seconds between mails per address
    subscribe_rate_per_ip: int = Field(default=10, ge=1)  # requests per minute per client IP
    max_body_bytes: int = Field(default=16 * 1024, ge=1024)
    check_deliverability: bool = False  # DNS look-ups when validating addresses
    # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed; empty: the socket peer.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # -- SES events ----------------------------------------------------------------------------
    sns_topic_arns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    transient_bounce_limit: int = Field(default=3, ge=1)
    transient_bounce_window: int = Field(default=5, ge=1)

    # -- operators -----------------------------------------------------------------------------
    admin_user: str | None = None
    admin_password: str | None = None
    admin_token: str | None = None

    # -- progress of long commands (imports, exports, replays) ---------------------------------
    # Seconds between plain progress lines when the output is not a terminal.
    progress_every: float = Field(default=10.0, gt=0)

    # -- abuse limits and the embeddable form (issue 9, issue 8 section 4) ------------------------
    # Failed operator log-ins per hour, all clients together (each network: 10 per minute).
    admin_failed_logins_global: int = Field(default=100, ge=1)
    # Sign-up requests that may lead to a confirmation mail, per hour: per mailbox (sub-addresses
    # and Gmail's dots count as one), per domain, and in total. Over the total, sign-ups pause.
    confirm_mails_per_mailbox: int = Field(default=2, ge=1)
    confirm_mails_per_domain: int = Field(default=100, ge=1)
    confirm_mails_per_hour: int = Field(default=500, ge=1)
    # Pages the embeddable form may send a reader back to (exact origins or URL prefixes).
    allowed_return_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds an idle keep-alive connection / a request's headers may take before `serve` hangs up.
    http_keep_alive_timeout: float = Field(default=5.0, gt=0)
    http_header_timeout: float = Field(default=10.0, gt=0)
    # -- request bodies (issue 19, item 14d) ----------------------------------------------------
    # Seconds a request's whole body may take to arrive once a route reads it, else 408.
    http_body_timeout: float = Field(default=20.0, gt=0)

    # -- the sign-up form's allowance per network (issue 19, item 5) ---------------------------
    # Sign-ups that lead to a confirmation mail, per hour from one network (an IPv4 address, an
    # IPv6 /64); far below MAILER_CONFIRM_MAILS_PER_HOUR, so one network cannot pause sign-ups.
    confirm_mails_per_network: int = Field(default=10, ge=1)

    # -- the reputation circuit breaker (issue 11) --------------------------------------------
    # A send pauses itself well under SES's review lines (5 % bounces, 0.1 % complaints); each
    # rate counts only once its sample and its events reach the minimums, so one early
    # complaint does not stop a send. 0 switches a threshold off.
    breaker_bounce_rate: float = Field(default=0.025, ge=0, le=1)  # hard bounces / sent
    breaker_complaint_rate: float = Field(default=0.0005, ge=0, le=1)  # complaints / delivered
    breaker_min_sent: int = Field(default=500, ge=1)
    breaker_min_bounces: int = Field(default=5, ge=1)
    breaker_min_delivered: int = Field(default=500, ge=1)
    breaker_min_complaints: int = Field(default=2, ge=1)
    breaker_interval: float = Field(default=5.0, gt=0)  # seconds between checks while sending

    # -- complaints a few people explain (security issue 19, item 19) --------------------------
    # Complaints pause a send only when there are more than 0.1 % of its readers (SES's review
    # line over the whole campaign), or this many, whichever is fewer: two sock puppets on a
    # small list no longer stall every issue.
    breaker_few_complaints: int = Field(default=5, ge=1)

    # -- issue checks and sources (mailer check, MAILER_ISSUE_SOURCE, previews) ----------------
    check_html_budget: int = Field(default=NEAR_CLIP_BYTES, ge=1024)  # bytes; under Gmail's clip
    issue_source: Literal["folder", "git", "feed", "atproto"] = "folder"
    source_cache_dir: Path = Path(".mailer-cache")  # git checkout, HTTP bodies with ETags
    source_timeout: float = Field(default=20.0, gt=0)  # seconds per network request
    source_retries: int = Field(default=3, ge=1, le=10)  # tries per request, with backoff
    source_git_url: str | None = None  # e.g. https://github.com/rust-lang/this-week-in-rust.git
    source_git_branch: str = "master"
    source_git_path: str = "content"  # folder of issues inside the repository
    source_feed_url: str | None = None  # Atom or RSS feed of the site
    source_pds_url: str | None = None  # the publication's AT Protocol PDS, https://…
    source_atproto_repo: str | None = None  # DID (or handle) owning the site.standard.document records
    preview_to: str | None = None  # editors' address for `mailer send --preview-to`

    # -- link counts, aggregate only (issue 25 §1) ----------------------------------------------
    # On, each outside link in the HTML part points at BASE_URL/l/<issue>/<n>, the same URL for
    # every reader; off (the default), links are exactly as written. Plaintext keeps its URLs.
    click_counts: bool = False

    # -- where the network issue sources may connect (issue 19) -------------------------------
    # Off (the default), a source never connects to a loopback, private or link-local address,
    # whatever the feed, its redirects or DNS say; on, for a site or PDS on the local network.
    source_allow_private: bool = False

    # -- rows whose SES answer was lost settle themselves (issue 21 §1) ------------------------
    # Seconds after its request a row left `unknown` waits for an SES event; after that, with
    # events for later messages of the campaign on record, the next send re-sends it once.
    # Written as a duration: `90s`, `15m`, `1h` (a bare number is seconds).
    unknown_settle_after: float = Field(default=900.0, gt=0)

    _split_topics = field_validator("sns_topic_arns", mode="before")(_split_csv)
    _split_proxies = field_validator("trusted_proxies", mode="before")(_split_csv)
    _split_return_urls = field_validator("allowed_return_urls", mode="before")(_split_csv)

    @field_validator("unknown_settle_after", mode="before")
    @classmethod
    def _read_settle_window(cls, value: object) -> object:
        return _duration_seconds(value) if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxy_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            ipaddress.ip_network(network, strict=False)  # a ValueError names the bad entry
        return value

    @field_validator(*_URL_SETTINGS)
    @classmethod
    def _check_urls(cls, value: str | list[str] | None, info: ValidationInfo) -> object:
        if value == "" and info.field_name != "base_url":
            return None  # `MAILER_SMTP_URL=` in a file: unset, as before
        for url in value if isinstance(value, list) else [value]:
            if url is not None:
                _URL_SETTINGS[info.field_name or ""](url)  # a ValueError says what is wrong
        return value

    def require_https_links(self) -> str:
        """MAILER_BASE_URL, which must be https when mail goes through SES or SMTP: readers get
        its links, and SNS posts events only to https. The outbox may keep http://127.0.0.1."""
        if self.transport in REAL_TRANSPORTS and urlsplit(self.base_url).scheme.lower() != "https":
            raise ConfigError(
                f"MAILER_BASE_URL is {self.base_url!r}, not https: mail through {self.transport} "
                "would carry its links to readers. Set it to the web app's public https address "
                "(the outbox and --dry-run accept http)")
        return self.base_url

    @property
    def secret_is_insecure(self) -> bool:
        return secret_key_problem(self.secret_key) is not None

    def require_secret_key(self) -> str:
        """The signing key, or a one-line ConfigError when it is missing or not a real one."""
        return require_real_secret(self.secret_key)

    # -- /admin: a weak or example credential switches its own way in off, never opens it ------

    @property
    def admin_basic_usable(self) -> bool:
        return bool(self.admin_user and self.admin_password
                    and admin_password_problem(self.admin_password) is None)

    @property
    def admin_token_usable(self) -> bool:
        return bool(self.admin_token) and admin_token_problem(self.admin_token) is None

    def admin_credential_problems(self) -> list[str]:
        """One phrase per /admin credential that is set but refused, naming its variable."""
        problems = [("MAILER_ADMIN_PASSWORD", admin_password_problem(self.admin_password)),
                    ("MAILER_ADMIN_TOKEN", admin_token_problem(self.admin_token))]
        return [f"{name} {problem}" for name, problem in problems if problem]

    def admin_warning(self) -> str | None:
        """What `mailer serve` says at start when a set /admin credential is refused."""
        problems = self.admin_credential_problems()
        if not problems:
            return None
        if self.admin_token_usable:
            state = "only MAILER_ADMIN_TOKEN opens /admin"
        elif self.admin_basic_usable:
            state = "only MAILER_ADMIN_PASSWORD opens /admin"
        else:
            state = "/admin is off"
        return f"{state}: {'; '.join(problems)}. Set a long random one: {GENERATE_HINT}"


def _normalised(value: str) -> str:
    """``value`` as compared with the examples: no whitespace anywhere, no surrounding quotes,
    case folded, so ``" Change-Me-Too"`` is still the example."""
    folded = "".join(unicodedata.normalize("NFKC", value).split())
    return folded.strip("'\"").casefold()


_NORMALISED_EXAMPLES = frozenset(_normalised(example) for example in EXAMPLE_CREDENTIALS)


def weakness(value: str, min_length: int) -> str | None:
    """Why ``value`` is too weak for a secret (an example, too short, too plain), or None."""
    normal = _normalised(value)
    if any(example in normal for example in _NORMALISED_EXAMPLES):
        return "is an example value, which anyone can read"
    if len(normal) < min_length:
        return f"is shorter than {min_length} characters"
    if len(set(normal)) < MIN_DISTINCT_CHARACTERS:
        return f"has fewer than {MIN_DISTINCT_CHARACTERS} different characters"
    return None


def secret_key_problem(secret: str | None) -> str | None:
    """Why ``secret`` must not sign links, or None when it is a real key."""
    if not secret:
        return "is not set"
    if secret in INSECURE_SECRET_KEYS:
        return "is the example or old development key, which anyone can read"
    return weakness(secret, MIN_SECRET_KEY_LENGTH)


def admin_password_problem(password: str | None) -> str | None:
    """Why MAILER_ADMIN_PASSWORD must not open /admin, or None (also when it is unset)."""
    return weakness(password, MIN_ADMIN_PASSWORD_LENGTH) if password else None


def admin_token_problem(token: str | None) -> str | None:
    """Why MAILER_ADMIN_TOKEN must not open /admin, or None (also when it is unset)."""
    return weakness(token, MIN_ADMIN_TOKEN_LENGTH) if token else None


def require_real_secret(secret: str | None) -> str:
    problem = secret_key_problem(secret)
    if problem is not None:
        raise ConfigError(
            f"MAILER_SECRET_KEY {problem}: links would not match the web app's. Run `mailer "
            "init` to write a .env with a random key, or set MAILER_SECRET_KEY to the web app's")
    return secret  # type: ignore[return-value]


# -- URL settings: checked when settings load, so a typo stops every command at once ---------

_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_PASSWORD_IN_URL = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")


def _split(value: str) -> SplitResult:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("is not a URL (a bad port or bracket)") from None
    if _SPACE_OR_CONTROL.search(value):
        raise ValueError("has a space or a control character")
    return parts


def check_web_url(value: str, *, example: str, bare: bool = False) -> str:
    """``value`` if it is an absolute http(s) URL with a host and no user or password;
    ``bare`` also refuses a query or fragment (the URL is a prefix mailer appends paths to)."""
    parts = _split(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL with a host, such as {example}")
    if "@" in parts.netloc:
        raise ValueError("must not hold a user name or password (user@host)")
    if bare and (parts.query or parts.fragment or value.endswith(("?", "#"))):
        raise ValueError(f"must not have a query (?…) or fragment (#…), such as {example}")
    return value


def check_smtp_url(value: str) -> str:
    parts = _split(value)
    if parts.scheme.lower() not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("must be smtp://user:password@host:587 or smtps://user:password@host:465")
    return value


def check_git_url(value: str) -> str:
    """A URL, scp-like address (git@host:path) or local path git can clone, never an option."""
    parts = _split(value)
    if value.startswith("-") or ("://" in value and (
            parts.scheme.lower() not in ("https", "http", "ssh", "git", "file")
            or not (parts.hostname or parts.scheme.lower() == "file"))):
        raise ValueError("must be a repository git can clone, such as "
                         "https://github.com/rust-lang/this-week-in-rust.git")
    return value


def _hide_password(value: object) -> object:
    return _PASSWORD_IN_URL.sub(r"\1***@", value) if isinstance(value, str) else value


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = first.get("loc") or ("?",)
    name = str(loc[0])
    var = name if name.startswith("MAILER_") else f"MAILER_{name.upper().rstrip('_')}"
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{var}: {message} (got {_hide_password(first.get('input'))!r})"


def load_settings(**overrides: object) -> Settings:
    """Build settings now, turning a validation error into a one-line :class:`ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(f"bad setting {_describe(error)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
