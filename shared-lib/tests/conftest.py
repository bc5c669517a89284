import dataclasses

import pytest
from bobdesk_shared import config
from bobdesk_shared.testing import TEST_ENV


@dataclasses.dataclass(frozen=True)
class ProbeSettings(config.SharedSettings):
    pass


@pytest.fixture
def settings_factory():
    def make(**env):
        return config.load(ProbeSettings, "probe", {**TEST_ENV, **env})

    return make
