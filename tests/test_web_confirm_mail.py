"""The confirmation mail: rendered through MJML like the newsletter, with a real text part."""

from __future__ import annotations

from bs4 import BeautifulSoup

from mailer.config import load_settings
from mailer.render.confirm import confirmation_email, describe_duration

URL = "https://news.example.org/confirm/eyJhIjoxfQ.abc-DEF_123"


def test_confirmation_mail_has_the_link_in_both_parts_and_names_the_address():
    settings = load_settings(newsletter_name="This Week in Rust", from_="TWiR <news@example.org>")
    mail = confirmation_email(settings, to="reader@example.org", confirm_url=URL)
    assert mail.to == "reader@example.org"
    assert mail.sender == "TWiR <news@example.org>"
    assert "This Week in Rust" in mail.subject
    soup = BeautifulSoup(mail.html, "html.parser")
    assert URL in [link["href"] for link in soup.find_all("a")]
    assert "reader@example.org" in soup.get_text()
    assert "Confirm my subscription" in soup.get_text()
    assert URL in mail.text.splitlines()
    assert "reader@example.org" in mail.text
    assert "<" not in mail.text  # plaintext, not HTML with the tags stripped
    assert "7 days" in mail.text  # the default lifetime, said in words


def test_confirmation_mail_is_inlined_html_without_webfonts():
    mail = confirmation_email(load_settings(), to="reader@example.org", confirm_url=URL)
    assert BeautifulSoup(mail.html, "html.parser").html["lang"] == "en"
    assert "fonts.googleapis" not in mail.html
    assert 'style="' in mail.html  # premailer inlined the CSS
    assert "prefers-color-scheme: dark" in mail.html


def test_markup_in_an_address_is_escaped_not_rendered():
    address = '"<b>x</b>"@example.org'
    mail = confirmation_email(load_settings(), to=address, confirm_url=URL)
    soup = BeautifulSoup(mail.html, "html.parser")
    assert soup.find("b") is None
    assert "<b>x</b>" in soup.get_text()


def test_lifetime_follows_the_setting():
    mail = confirmation_email(
        load_settings(confirm_token_max_age=2 * 3600), to="r@example.org", confirm_url=URL
    )
    assert "2 hours" in mail.text
    assert describe_duration(86400) == "1 day"
    assert describe_duration(90) == "1 minute"
