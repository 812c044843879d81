"""Garbage-collector setting for long-running serving processes (web and Celery workers).

A 10,000-row batch builds hundreds of thousands of small dicts and lists (the answers), and
every so often the cyclic collector walks every object in the process, including the ~220,000
that Django, pandas and scikit-learn leave behind at import. Freezing those after start-up
takes them out of every later collection: in-process, a 10,000-row churn predict went from
228 to 108 ms.

The collection thresholds stay CPython's defaults: spacing collections out (50,000 new objects
instead of 700) gave no measurable gain through the HTTP stack and raised the peak RSS of a web
worker by 100-180 MB, because the cyclic garbage of each request (Django and DRF request
objects) then lives much longer. See bench/README.md.
"""

from __future__ import annotations

import gc


def tune_for_serving() -> None:
    """Freeze what is alive now so that no later collection walks it again.

    Call once per process after start-up, when modules, settings and URL patterns are loaded.
    """
    gc.collect()  # so that garbage from start-up is freed, not frozen
    gc.freeze()
