"""Work lists shown a page at a time (the today list's sections, the query list, the signature
queue). The database reads one page (LIMIT/OFFSET) and counts the rest, so a page costs the
same however many rows wait. A page number from the query string never fails: one that is not a
number, zero or negative gives the first page, one past the end the last page. Links keep the
rest of the query string (filters, the other sections' pages) and can jump to the list's anchor.

Several lists on one page each take their own parameter (`overdue_page`, `visits_page`...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.http import QueryDict

PAGE_SIZE = 50


class _Counted:
    """A list whose length is already known (counted with other lists in one query): the
    paginator asks `count()` instead of counting again."""

    def __init__(self, count: int):
        self._count = count

    def count(self) -> int:
        return self._count


def page_number(raw: str | None, *, num_pages: int) -> int:
    """The page to show for a query-string value: the first for a value that is missing, not a
    whole number, zero or negative; the last for one past the end."""
    try:
        number = int(raw or "")
    except ValueError:
        return 1
    return min(max(number, 1), num_pages)


@dataclass(frozen=True)
class PageLink:
    number: int | None  # None: pages left out (an ellipsis)
    url: str
    current: bool = False


@dataclass(frozen=True)
class ListPage(Sequence):
    """One page of a list: its rows (read, a list), which page of how many, and the links of its
    pagination control."""

    page: Page
    param: str
    query: QueryDict
    fragment: str = ""

    def __getitem__(self, index):
        return self.page.object_list[index]

    def __len__(self) -> int:
        return len(self.page.object_list)

    @property
    def rows(self) -> list:
        return self.page.object_list

    @property
    def number(self) -> int:
        return self.page.number

    @property
    def count(self) -> int:
        """Rows in the whole list, every page."""
        return self.page.paginator.count

    @property
    def num_pages(self) -> int:
        return self.page.paginator.num_pages

    @property
    def has_other_pages(self) -> bool:
        return self.page.has_other_pages()

    @property
    def start_index(self) -> int:
        return self.page.start_index()

    @property
    def end_index(self) -> int:
        return self.page.end_index()

    def url(self, number: int) -> str:
        """This page of the list, keeping every other parameter; page 1 drops the parameter."""
        query = self.query.copy()
        query.pop(self.param, None)
        if number > 1:
            query[self.param] = str(number)
        return f"?{query.urlencode()}" + (f"#{self.fragment}" if self.fragment else "")

    @property
    def previous_url(self) -> str | None:
        return self.url(self.number - 1) if self.page.has_previous() else None

    @property
    def next_url(self) -> str | None:
        return self.url(self.number + 1) if self.page.has_next() else None

    @property
    def links(self) -> list[PageLink]:
        """The first and last pages, and two either side of the current one; gaps as ellipses."""
        links = []
        for number in self.page.paginator.get_elided_page_range(self.number, on_each_side=2, on_ends=1):
            if number == Paginator.ELLIPSIS:
                links.append(PageLink(None, ""))
            else:
                links.append(PageLink(number, self.url(number), number == self.number))
        return links


def list_page(
    rows: Any,
    *,
    query: QueryDict,
    param: str = "page",
    count: int | None = None,
    per_page: int = PAGE_SIZE,
    fragment: str = "",
) -> ListPage:
    """The page of `rows` (a QuerySet, ordered: read with LIMIT/OFFSET) that `query[param]` asks
    for. `count`, when the caller already has it, saves the COUNT query. Queries: two (count,
    page), one with `count`; the page is read even when the list is empty, so that a page's
    statements do not depend on the data."""
    paginator = Paginator(rows if count is None else _Counted(count), per_page)
    number = page_number(query.get(param), num_pages=paginator.num_pages)
    start = (number - 1) * per_page
    return ListPage(Page(list(rows[start : start + per_page]), number, paginator), param, query, fragment)
