import pytest

from run_fixtures import make_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    model, config = make_run(run_dir)
    return run_dir, model, config
