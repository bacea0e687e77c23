"""Find and parse a newsletter issue, whatever form it comes in, into a :class:`mailer.domain.Issue`.

One module per job:

* :mod:`.find`: find an issue in a folder by the number its header claims (``Number:``, or for
  old issues the number at the end of ``Title:``), never by its filename: real filenames are
  misspelled and misdated.
* :mod:`.load`: load one file; the format comes from the extension, else from the content.
* :mod:`.markdown`: **TWiR Markdown** (the main input), Pelican ``Key: value`` header lines, a
  blank line, then Python-Markdown text.
* :mod:`.records`: **a ``site.standard.document`` record** (AT Protocol / standard.site JSON),
  plain text whose link targets were stripped, Markdown-like in shape.
* :mod:`.pages`: **a rendered HTML page** of the issue, its article body cleaned of anything active.

Pure layer: reads files, never the network or the database. Callers import from here.
"""

from mailer.issues.common import DEFAULT_SITE_URL
from mailer.issues.find import MAX_HEADER_LINES, find_issue_file, latest_issue_number, load_issue_by_number
from mailer.issues.load import HTML_SUFFIXES, JSON_SUFFIXES, MARKDOWN_SUFFIXES, MAX_ISSUE_BYTES, load_issue
from mailer.issues.markdown import parse_markdown_issue, pelican_slugify
from mailer.issues.pages import parse_html_page
from mailer.issues.records import STANDARD_DOCUMENT_TYPE, normalize_standard_text, parse_standard_site

__all__ = [
    "DEFAULT_SITE_URL",
    "HTML_SUFFIXES",
    "JSON_SUFFIXES",
    "MARKDOWN_SUFFIXES",
    "MAX_HEADER_LINES",
    "MAX_ISSUE_BYTES",
    "STANDARD_DOCUMENT_TYPE",
    "find_issue_file",
    "latest_issue_number",
    "load_issue",
    "load_issue_by_number",
    "normalize_standard_text",
    "parse_html_page",
    "parse_markdown_issue",
    "parse_standard_site",
    "pelican_slugify",
]
