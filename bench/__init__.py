"""`make bench` (issue #9): the EDC under gunicorn on loopback at two data sizes, against targets.

`bench.run` is the entry point; each data size is measured by `bench.measure` in a process of its
own (Django is configured once per process, for one database). See the README's Performance section.
"""
