"""gunicorn settings shared by every HTTP component, read from the environment.

`gunicorn -c python:bobdesk_shared.gunicorn_conf 'pkg.app:create_app()'`
PORT (required), BIND_HOST (0.0.0.0), WEB_CONCURRENCY (2), GUNICORN_THREADS (4),
GUNICORN_TIMEOUT (30), GUNICORN_GRACEFUL_TIMEOUT (25).
"""

import os
import tempfile

from bobdesk_shared.server_errors import install_gunicorn_json_errors

install_gunicorn_json_errors()  # 414, 431 and malformed requests answered in the JSON error shape

bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ['PORT']}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
accesslog = None  # the app logs one structured line per request
errorlog = "-"
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Several workers share one /metrics: prometheus-client's multiprocess mode
# needs a directory known before the workers import it.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
