import pytest
from bobdesk_devtools.testing import TEST_ENV
from bobdesk_shared import config


class ProbeSettings(config.SharedSettings):
    SERVICE_NAME = "probe"


@pytest.fixture
def settings_factory():
    def make(**env):
        return config.load(ProbeSettings, {**TEST_ENV, **env})

    return make
