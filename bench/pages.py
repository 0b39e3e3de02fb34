"""What a user does, as timed HTTP steps: open a page, save the measurement table, answer a
questionnaire page, submit a questionnaire. Used by the benchmark (bench.measure) and the load test.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import lxml.html

from bench.traffic import Sample, csrf_token, timed

FORM_ERROR_STATUS = 422  # a save refused with field errors: the page came back instead of a redirect


def get_page(url: str):
    async def step(client: httpx.AsyncClient, number: int) -> Sample:
        return (await timed(client, "GET", url))[0]

    return step


def _table_form(html: str) -> list[tuple[str, str]]:
    """The measurement + injection table's fields as the browser would post them."""
    document = lxml.html.fromstring(html)
    form = next(f for f in document.forms if "rows-TOTAL_FORMS" in f.fields)
    return list(form.form_values())


def _changed_length(value: str, number: int) -> str:
    """A longest-axis length that differs from what is saved, so that every save writes a row."""
    current = Decimal(value or "10.0")
    new = Decimal("10.0") + Decimal(number % 50) / 10
    return str(new if new != current else new + Decimal("0.1"))


async def table_save(client: httpx.AsyncClient, visit_id: int, number: int) -> tuple[Sample, Sample]:
    """Open a visit's measurement table, change the first row's length, save with a reason.
    Returns the (page, save) samples; a save that did not redirect counts as refused."""
    url = f"/visits/{visit_id}/lesions/"
    page, response = await timed(client, "GET", url)
    if response is None or response.status_code != 200:
        return page, Sample(0, 0.0, error=f"table page answered {page.status}")
    fields = _table_form(response.text)
    data: dict[str, list[str]] = {}
    for name, value in fields:
        if name == "rows-0-length_mm":
            value = _changed_length(value, number)
        elif name == "table-reason":
            value = "benchmark: re-measured"
        data.setdefault(name, []).append(value)
    save, answer = await timed(client, "POST", url, data=data)
    if answer is not None and answer.status_code == 200:
        # The table came back: refused (conflict or field errors), nothing saved.
        save = Sample(FORM_ERROR_STATUS, save.seconds, save.queries, save.rss_kb, "save refused")
    return page, save


def measurement_save(visit_id: int):
    async def step(client: httpx.AsyncClient, number: int) -> Sample:
        return (await table_save(client, visit_id, number))[1]

    return step


async def questionnaire_open(client: httpx.AsyncClient, url: str) -> Sample:
    """GET a questionnaire page; its form's CSRF token is kept on the client for the next POST."""
    sample, page = await timed(client, "GET", url)
    if page is not None and page.status_code == 200:
        client.bench_csrf = csrf_token(page.text)
    return sample


async def questionnaire_page_post(client: httpx.AsyncClient, url: str, data: dict[str, str]) -> Sample:
    """POST one questionnaire page (opening it first if this client has no CSRF token yet); a
    page that comes back instead of moving on counts as refused."""
    if getattr(client, "bench_csrf", None) is None:
        opened = await questionnaire_open(client, url)
        if not opened.ok:
            return opened
    sample, answer = await timed(client, "POST", url, data={**data, "csrfmiddlewaretoken": client.bench_csrf})
    if answer is not None and answer.status_code == 200:
        sample = Sample(FORM_ERROR_STATUS, sample.seconds, sample.queries, sample.rss_kb, "page refused")
    return sample


def questionnaire_save(url: str, posts: list[dict[str, str]]):
    async def step(client: httpx.AsyncClient, number: int) -> Sample:
        return await questionnaire_page_post(client, url, posts[number % len(posts)])

    return step


async def questionnaire_submit(client: httpx.AsyncClient, token: str) -> Sample:
    """Press "Submit" on the review page (after the pages were answered in this client); an
    answer other than the redirect to the thank-you page counts as refused."""
    csrf = getattr(client, "bench_csrf", None)
    if csrf is None:
        return Sample(0, 0.0, error="no questionnaire page was opened")
    sample, answer = await timed(client, "POST", f"/q/{token}/review/", data={"csrfmiddlewaretoken": csrf})
    if answer is not None and not answer.headers.get("location", "").endswith("/thanks/"):
        sample = Sample(FORM_ERROR_STATUS, sample.seconds, sample.queries, sample.rss_kb, "submit refused")
    return sample
