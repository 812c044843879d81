import os

from django.core.wsgi import get_wsgi_application

from config.gc import tune_for_serving
from config.memory import ReleaseMemoryAfterLargeRequests

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# A request body of 1 MB is a batch of ~2,000 rows or an uploaded file: enough transient memory
# to be worth returning (~5 ms), and never a single prediction (~1 KB).
application = ReleaseMemoryAfterLargeRequests(get_wsgi_application(), min_body_bytes=1_000_000)
tune_for_serving()
