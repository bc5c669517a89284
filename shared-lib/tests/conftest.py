import dataclasses

import pytest
from bobdesk_devtools.testing import TEST_ENV
from bobdesk_shared import config


@dataclasses.dataclass(frozen=True)
class ProbeSettings(config.SharedSettings):
    pass


@pytest.fixture
def settings_factory():
    def make(**env):
        return config.load(ProbeSettings, "probe", {**TEST_ENV, **env})

    return make
