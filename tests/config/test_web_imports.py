"""What a web worker imports: the serving path stays clear of the training libraries.

scikit-learn, scipy and skops cost a web worker ~100 MB of its memory; serving
reads exported artifacts (predictions/catalog/compiled.py) and needs neither. The catalog's
contract tests check that answering from an artifact file imports neither; this checks that
nothing on the way in (settings, middleware, every URL's view) brings them back.
"""

from __future__ import annotations

import json
import subprocess
import sys

TRAINING_ONLY = ("sklearn", "skops", "scipy")


WORKER = """
import json, sys
import config.wsgi
from django.urls import URLResolver, get_resolver

def views(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from views(pattern.url_patterns)
        else:
            yield pattern.callback

count = len(list(views(get_resolver().url_patterns)))
heavy = sorted(m for m in sys.modules if m.startswith(TRAINING_ONLY))
print(json.dumps({"heavy": heavy, "views": count}))
"""


def test_a_web_worker_with_every_view_loaded_imports_no_training_library():
    # Given a fresh interpreter that loads the WSGI application and every URL's view
    code = f"TRAINING_ONLY = {TRAINING_ONLY!r}\n{WORKER}"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)

    # Then none of the training libraries is in it
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["views"] > 30
    assert printed["heavy"] == []
