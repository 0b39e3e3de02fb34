"""The data a browser posts for a form when the user changes nothing: the starting point of tests
that post a page's own form (the visit table's tests, the bad-input fuzzing)."""

from __future__ import annotations

from django import forms


def browser_data(*bound_forms: forms.BaseForm) -> dict:
    """What a browser posts for these forms when the user changes nothing."""
    data: dict = {}
    for form in bound_forms:
        for bound in form:
            if bound.field.disabled:
                continue
            value = bound.value()
            widget = bound.field.widget
            if isinstance(widget, forms.CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            elif isinstance(widget, forms.CheckboxSelectMultiple | forms.SelectMultiple):
                if value:
                    data[bound.html_name] = [str(v) for v in value]
            else:
                data[bound.html_name] = "" if value is None else str(value)
    return data
