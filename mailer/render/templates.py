"""The one Jinja environment factory for the mail templates (the issue and the confirmation mail).

Built once per templates folder and kept: an environment compiles and caches each template, so
building one per message (as the confirmation mail did) compiled the template again every time.
Jinja's loader still notices an edited template file and reloads it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2


def template_environment(templates_dir: Path | str) -> jinja2.Environment:
    """The environment for ``templates_dir``, the same object on every call."""
    return _environment(Path(templates_dir))


@lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        # MJML is XML: autoescape keeps an address like a<b>@x or a title from turning into markup
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
