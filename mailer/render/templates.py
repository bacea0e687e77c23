"""The one Jinja environment factory: the mail templates (the issue, the confirmation mail) and the
web pages (``templates/web/``, the public pages and the operator console).

Built once per templates folder and set of filters, and kept: an environment compiles and caches
each template, so building one per message (as the confirmation mail did) compiled the template
again every time. Jinja's loader still notices an edited template file and reloads it.

Values that differ between callers (a page's stylesheet, the newsletter's name) are not put in the
shared environment's globals: the caller passes them when it renders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

import jinja2

Filter = Callable[..., object]


def template_environment(
    templates_dir: Path | str, filters: Mapping[str, Filter] | None = None
) -> jinja2.Environment:
    """The environment for ``templates_dir`` with ``filters``: the same object on every call
    with the same folder and filters."""
    return _environment(Path(templates_dir), tuple(sorted((filters or {}).items())))


@lru_cache(maxsize=8)
def _environment(templates_dir: Path, filters: tuple[tuple[str, Filter], ...]) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        # HTML, and MJML (which is XML): an address like a<b>@x or a title never turns into markup
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a template fails a test, not a reader
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(filters)
    return environment
