"""One Jinja environment per templates folder, shared by the newsletter and the confirmation mail."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mailer.config import load_settings
from mailer.domain import Issue
from mailer.render import RenderOptions, render_issue
from mailer.render.confirm import confirmation_email
from mailer.render.templates import template_environment

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
URL = "https://news.example.org/confirm/abc"


def own_templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    return folder


def test_the_issue_and_every_confirmation_mail_use_one_environment(tmp_path):
    folder = own_templates(tmp_path)
    settings = load_settings(templates_dir=folder)
    render_issue(Issue(title="This Week in Rust 1", body="Hello."), RenderOptions.from_settings(settings))
    for reader in ("a@example.org", "b@example.org", "c@example.org"):
        confirmation_email(settings, to=reader, confirm_url=URL)
    environment = template_environment(str(folder))
    assert environment is template_environment(folder)
    # the confirmation template was compiled into the shared environment, not a throw-away one
    assert {"issue.mjml.j2", "confirm.mjml.j2"} <= {name for _, name in environment.cache.keys()}


def test_an_operator_s_edited_template_reaches_the_next_mail_without_a_restart(tmp_path):
    folder = own_templates(tmp_path)
    settings = load_settings(templates_dir=folder)
    first = confirmation_email(settings, to="a@example.org", confirm_url=URL)
    template = folder / "confirm.mjml.j2"
    template.write_text(template.read_text().replace("Confirm my subscription", "Yes, send it to me"))
    later = template.stat().st_mtime + 5  # the loader compares modification times
    os.utime(template, (later, later))
    second = confirmation_email(settings, to="a@example.org", confirm_url=URL)
    assert "Confirm my subscription" in first.html and "Yes, send it to me" not in first.html
    assert "Yes, send it to me" in second.html


def test_the_web_pages_use_the_factory_s_environment_and_an_operator_s_own_folder(tmp_path):
    from fastapi.testclient import TestClient

    from mailer.web.app import create_app

    folder = own_templates(tmp_path)
    page = folder / "web" / "error.html"
    page.write_text(page.read_text().replace("<h1>{{ title }}</h1>", "<h1>Own: {{ title }}</h1>"))
    settings = load_settings(templates_dir=folder)
    first, second = create_app(settings), create_app(settings)
    assert first.state.pages.env is second.state.pages.env is template_environment(folder / "web")
    assert "Own: Page not found" in TestClient(first).get("/no-such-page").text
