"""`mailer serve`: the public web app (subscribe, confirm, unsubscribe, web hook) on uvicorn."""

from __future__ import annotations

import errno
import socket

import typer

from mailer.cli._app import app, engine, err_console, examples, settings
from mailer.config import Settings
from mailer.errors import ConfigError

# An import string, not an import: the CLI and the web app are sibling entry points.
APP_FACTORY = "mailer.web.app:create_app"
# h11 with a deadline for request headers (slow or idle clients), see mailer/web/server.py
HTTP_PROTOCOL = "mailer.web.server:HeaderTimeoutH11Protocol"
WORKER_HEALTHCHECK_SECONDS = 60
MAX_HEADER_BYTES = 16 * 1024  # h11's cap on a request head; larger ones get a 400


def check_can_listen(host: str, port: int) -> None:
    """Fail with one line now rather than a uvicorn traceback after start-up."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            reason = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
            raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None


def warn_about_admin(current: Settings) -> None:
    """One line when a set /admin credential is refused: the public pages still serve, and the
    operator learns now, not at the first log-in, why /admin stays shut."""
    warning = current.admin_warning()
    if warning is not None:
        err_console.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)


@app.command("serve", short_help="Run the web app: subscribe, unsubscribe, SES web hook.",
             epilog=examples("mailer serve                      # http://127.0.0.1:8000",
                             "mailer serve --host 0.0.0.0 --port 8080",
                             "mailer serve --workers 2             # two processes, one port"))
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port"),
    workers: int = typer.Option(1, min=1, max=64,
                                help="processes sharing the port (limits and figures are shared "
                                     "through the database)"),
) -> None:
    """Run the public web app with uvicorn (put a TLS proxy in front)."""
    current = settings()
    current.require_secret_key()  # the example or no key: anyone could forge links
    current.require_https_links()  # confirm mails through ses/smtp; SNS posts only to https
    engine()  # creates a fresh schema, or refuses an outdated / newer one, before listening
    from mailer.store.db import check_integrity

    check_integrity(engine())  # a damaged page fails here, not on some reader's request
    check_can_listen(host, port)
    warn_about_admin(current)

    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # a worker must answer the parent's ping within this: uvicorn's 5 s kills (and restarts,
        # for ever) workers still importing the app on a busy small machine
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        # X-Forwarded-For is believed only for MAILER_TRUSTED_PROXIES, by the app itself
        proxy_headers=False,
        server_header=False,
        log_level="info",
        http=HTTP_PROTOCOL,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=current.http_keep_alive_timeout,
        timeout_graceful_shutdown=10,
    )
