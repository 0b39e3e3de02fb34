"""Work lists a page at a time (trial.pagination): bad page numbers land on the first or last
page, links keep the rest of the query string."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from trial.pagination import list_page, page_number


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 1), ("", 1), ("abc", 1), ("2.5", 1), ("0", 1), ("-4", 1), (" 2", 2), ("3", 3), ("99999", 4)],
)
def test_page_number_is_first_or_last_page_for_bad_values(raw, expected):
    assert page_number(raw, num_pages=4) == expected


def test_an_empty_list_has_one_empty_page():
    page = list_page([], query=QueryDict("page=7"))
    assert (page.number, page.num_pages, page.count, list(page)) == (1, 1, 0, [])
    assert not page.has_other_pages


def test_a_page_reads_its_rows_and_links_keep_the_other_parameters():
    rows = list(range(1, 24))  # 23 rows, 5 a page: 5 pages
    query = QueryDict("state=open&other_page=3&overdue_page=2")
    page = list_page(rows, query=query, param="overdue_page", per_page=5, fragment="overdue")
    assert list(page) == [6, 7, 8, 9, 10] and page.count == 23 and page.num_pages == 5
    assert (page.start_index, page.end_index) == (6, 10)
    assert page.previous_url == "?state=open&other_page=3#overdue"  # page 1 drops the parameter
    assert page.next_url == "?state=open&other_page=3&overdue_page=3#overdue"
    assert [(link.number, link.current) for link in page.links] == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
        (5, False),
    ]


def test_long_lists_leave_out_pages_far_from_the_current_one():
    page = list_page(list(range(500)), query=QueryDict("page=10"), per_page=10)
    assert [link.number for link in page.links] == [1, None, 8, 9, 10, 11, 12, None, 50]
    last = list_page(list(range(500)), query=QueryDict("page=900"), per_page=10)
    assert last.number == 50 and list(last) == list(range(490, 500)) and last.next_url is None


def test_a_count_given_by_the_caller_is_not_counted_again():
    class Rows(list):
        def count(self):
            raise AssertionError("counted again")

    page = list_page(Rows(range(30)), query=QueryDict(""), per_page=10, count=30)
    assert page.num_pages == 3 and list(page) == list(range(10))
