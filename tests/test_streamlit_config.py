"""Both Streamlit apps hide the "Deploy" button however they are started (issue 11).

`streamwatch dashboards` and `streamwatch support console` pass `--client.toolbarMode
minimal`; `streamlit run dashboards/app.py` does not. A `.streamlit/config.toml` next to each
app's main script is read by Streamlit whatever the working directory: this test asks
Streamlit's own config loader, as `streamlit run` would, from another directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit import config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)
        config._main_script_path = None
        config.get_config_options(force_reparse=True)


@pytest.mark.parametrize("app", ["dashboards/app.py", "support_console/app.py"])
def test_the_toolbar_is_minimal_without_the_command_line_flag(app: str, elsewhere: Path) -> None:
    config._main_script_path = str(REPO / app)
    config.get_config_options(force_reparse=True)

    assert config.get_option("client.toolbarMode") == "minimal"
    assert config.get_option("browser.gatherUsageStats") is False


def test_streamlit_defaults_would_show_the_button(elsewhere: Path) -> None:
    """The control: with no config file next to the script the toolbar is Streamlit's
    default ("auto": the Deploy button shows on a local run)."""
    (elsewhere / "app.py").write_text("")
    config._main_script_path = str(elsewhere / "app.py")
    config.get_config_options(force_reparse=True)

    assert config.get_option("client.toolbarMode") == "auto"
