"""The one Jinja environment every HTML page is rendered through (report, trend, rollout).

Templates ship inside the package (package-data ``templates/*.j2``), so an installed
inferops renders the same pages as a checkout.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment(template_dir: Path = TEMPLATES, **filters):
    """A strict, autoescaping environment: a typo in a template fails instead of rendering blank."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters)
    return env
