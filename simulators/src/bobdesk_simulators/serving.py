"""A simulator process: one threaded werkzeug server (the state lives in memory), stopped by SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

from werkzeug.serving import make_server


def serve(app, host: str, port: int, log: logging.Logger, **details) -> None:
    server = make_server(host, port, app, threaded=True)
    # shutdown() waits for serve_forever, so it must run on another thread than the handler's.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("simulator listening", extra={"url": f"http://{host}:{server.server_port}", **details})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
