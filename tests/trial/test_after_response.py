"""Work a request leaves until its response is sent (trial.after_response)."""

from __future__ import annotations

import logging

from django.http import HttpResponse
from django.test import RequestFactory

from trial.after_response import AfterResponseMiddleware, after_response


def serve(view):
    """The response to a request through the middleware, as a WSGI server gets it: the server
    writes it, then closes it."""
    return AfterResponseMiddleware(view)(RequestFactory().post("/save/"))


def test_outside_a_request_the_work_is_done_at_once():
    done = []
    after_response(lambda: done.append("published"))
    assert done == ["published"]


def test_in_a_request_the_work_waits_until_the_response_has_been_sent():
    done = []

    def view(request):
        after_response(lambda: done.append("published"))
        assert done == []
        return HttpResponse("saved")

    response = serve(view)
    assert response.content == b"saved" and done == []  # the user has the answer; nothing yet
    response.close()  # the server has written it
    assert done == ["published"]
    after_response(lambda: done.append("a command's"))  # the request is over: at once again
    assert done == ["published", "a command's"]


def test_one_failure_is_logged_and_the_rest_still_runs(caplog):
    done = []

    def fail():
        raise ConnectionError("broker down")

    def view(request):
        after_response(fail)
        after_response(lambda: done.append("second"))
        return HttpResponse("saved")

    with caplog.at_level(logging.ERROR, logger="trial.after_response"):
        serve(view).close()
    assert done == ["second"]
    assert "broker down" in caplog.text
