"""gunicorn settings shared by every HTTP component, read from the environment.

`gunicorn -c python:bobdesk_shared.gunicorn_conf 'pkg.app:create_app()'`
PORT (required), BIND_HOST (127.0.0.1; the image sets 0.0.0.0), WEB_CONCURRENCY (2),
GUNICORN_THREADS (4), GUNICORN_TIMEOUT (30), GUNICORN_GRACEFUL_TIMEOUT (25),
GUNICORN_WORKER_TMP_DIR, FORWARDED_ALLOW_IPS (127.0.0.1), LOG_LEVEL (INFO).

gunicorn's own lines (start, workers, signals, errors) go through the same JSON
formatter as the component's, named after the component (its app module's
`SERVICE_NAME`): the output holds nothing but JSON lines.

Each worker freezes what it holds once its app is loaded out of the garbage collector's
generations (`post_worker_init`): collections then scan only what requests allocate.
"""

import gc
import importlib
import os
import tempfile

from gunicorn.glogging import Logger
from pydantic import Field

from bobdesk_shared.config import EnvSettings, LogLevel, Port, read
from bobdesk_shared.logs import configure_logging
from bobdesk_shared.server_errors import install_gunicorn_json_errors

install_gunicorn_json_errors()  # 414, 431 and malformed requests answered in the JSON error shape


class ServerSettings(EnvSettings):
    port: Port
    # Loopback unless told: a developer's machine does not publish its dev secrets' services.
    bind_host: str = "127.0.0.1"
    web_concurrency: int = Field(2, ge=1)
    gunicorn_threads: int = Field(4, ge=1)
    gunicorn_timeout: int = Field(30, ge=1)
    gunicorn_graceful_timeout: int = Field(25, ge=0)
    gunicorn_worker_tmp_dir: str | None = None
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: LogLevel = "INFO"


_server = read(ServerSettings)

bind = f"{_server.bind_host}:{_server.port}"
workers = _server.web_concurrency
threads = _server.gunicorn_threads
worker_class = "gthread"
timeout = _server.gunicorn_timeout
graceful_timeout = _server.gunicorn_graceful_timeout
keepalive = 5
accesslog = None  # the app logs one structured line per request
errorlog = "-"
loglevel = _server.log_level.lower()
worker_tmp_dir = _server.gunicorn_worker_tmp_dir
forwarded_allow_ips = _server.forwarded_allow_ips

# gunicorn's loggers keep no handler of their own and propagate to the root's
# JSON handler (which each worker's create_app installs again). Its access lines
# are off: the app logs one structured line per request, with its request id.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "bobdesk_shared.logs.JsonFormatter", "service": "gunicorn"}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": _server.log_level, "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": _server.log_level, "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}


class ComponentLogger(Logger):
    """gunicorn's logger, with the master's lines named after the component from its first line on."""

    # The app logs one structured line per request. gunicorn counts its access log as enabled once
    # `logconfig_dict` is set, and would build every request's atoms (headers, times) only for the
    # line to be dropped at WARNING: 0.1 ms of a list request.
    access_log_enabled = False

    def setup(self, cfg):
        super().setup(cfg)  # applies logconfig_dict
        # The process name defaults to the app argument, "package.app:create_app()".
        module = importlib.import_module(cfg.proc_name.split(":", 1)[0])
        configure_logging(module.SERVICE_NAME, _server.log_level)


logger_class = ComponentLogger

# Several workers share one /metrics: prometheus-client's multiprocess mode
# needs a directory known before the workers import it.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")


def post_worker_init(worker):
    # What a worker holds once its app is loaded (modules, the app, its clients) lives as long as the
    # worker: frozen out of the collector's generations, it is no longer scanned by every collection
    # a request triggers (a batch of 500 invoices allocates enough for dozens: a fifth of its CPU;
    # in a list worker, a pause of ~100 ms every hundred pages of 200, then under 1 ms).
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
