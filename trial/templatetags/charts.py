"""Server-drawn SVG charts shown as images.

pygal's SVG carries its own <style> element, style="" attributes and a <script> element. Inline in a
page, each would need 'unsafe-inline' in the Content-Security-Policy; as an <img> with a data: URI
the SVG is a separate image document, its styles apply inside it and no script in it ever runs. The
same SVG goes into the PDF reports unchanged.
"""

from __future__ import annotations

import base64
import html
import re

from django import template
from django.utils.html import format_html

register = template.Library()

_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


@register.filter
def svg_image(svg: str) -> str:
    """An <img> showing `svg`, with the chart's own title as its text alternative."""
    title = _TITLE.search(svg)
    alt = html.unescape(title.group(1)).strip() if title else ""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return format_html('<img class="chart-image" src="data:image/svg+xml;base64,{}" alt="{}">', data, alt)
