"""HTML to PDF with WeasyPrint, fetching nothing but what the EDC itself hands over.

WeasyPrint fetches every URL a document names (stylesheets, images, fonts, SVG references) with
its URL fetcher; the default one opens file://, http(s)://, ftp:// and data: URLs. A report holds
text that people typed (adverse event descriptions, operator names): if that text ever reached the
HTML unescaped, `<img src="file:///etc/passwd">` would read the worker's files into the PDF and
`http://169.254.169.254/` would probe the network. `SafeFetcher` allows two private schemes only:

    edc-static:<path>   a file of the project's static files (staticfiles finders), e.g. CSS
    edc-asset:<name>    bytes generated for this render and passed explicitly (the chart SVG)

and refuses everything else, recording each refusal (`refused`) and logging it.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.staticfiles import finders
from weasyprint import HTML, URLFetcher
from weasyprint.urls import URLFetcherResponse

logger = logging.getLogger(__name__)

STATIC_SCHEME = "edc-static:"
ASSET_SCHEME = "edc-asset:"


class RefusedURL(ValueError):
    """A URL the report renderer does not fetch."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


class SafeFetcher(URLFetcher):
    """WeasyPrint's fetcher with every network and file handler replaced by two private schemes.

    A refusal is not fatal: the document renders without the resource (WeasyPrint logs a warning),
    so user text can never stop a report from being produced."""

    def __init__(self, assets: dict[str, Asset] | None = None):
        super().__init__(allowed_protocols=(), allow_redirects=False)
        self.assets = dict(assets or {})
        self.refused: list[str] = []

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        if url.startswith(ASSET_SCHEME):
            name = url.removeprefix(ASSET_SCHEME)
            if name in self.assets:
                asset = self.assets[name]
                return URLFetcherResponse(url, asset.body, {"Content-Type": asset.media_type})
        elif url.startswith(STATIC_SCHEME):
            path = static_file(url.removeprefix(STATIC_SCHEME))
            if path is not None:
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": media_type})
        self.refused.append(url)
        logger.warning("Report rendering refused to fetch %.200s", url)
        raise RefusedURL(f"not fetched: {url[:200]}")


def static_file(relative: str) -> Path | None:
    """The file a static path names, found by Django's staticfiles finders; None for anything
    that escapes them ("..", absolute paths, query strings)."""
    if not relative or relative.startswith("/") or "\\" in relative or "?" in relative or "#" in relative:
        return None
    if any(part in ("", ".", "..") for part in relative.split("/")):
        return None
    found = finders.find(relative)
    if not found:
        return None
    return Path(found)


@dataclass
class RenderResult:
    pdf: bytes
    refused: list[str] = field(default_factory=list)


def html_to_pdf(html: str, *, assets: dict[str, Asset] | None = None) -> RenderResult:
    """Render `html` (already escaped by the template engine) to PDF bytes. No base URL: a relative
    URL resolves against nothing, so only the private schemes above can name a resource."""
    fetcher = SafeFetcher(assets)
    pdf = HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf()
    return RenderResult(pdf=pdf, refused=fetcher.refused)
