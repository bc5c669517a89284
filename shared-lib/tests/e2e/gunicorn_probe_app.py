"""The smallest component served the way every real one is: for tests of the shared gunicorn config."""

import logging

from bobdesk_shared import config
from bobdesk_shared.startup import start
from bobdesk_shared.web import create_app as create_web_app

SERVICE_NAME = "probe-service"


class Settings(config.SharedSettings):
    SERVICE_NAME = SERVICE_NAME


def create_app():
    settings = config.load(Settings)
    start(settings)
    app, _ = create_web_app(settings, import_name=__name__, title="probe", blueprints=[], ready_checks={})
    logging.getLogger(__name__).info("probe ready")
    return app
