"""kcli.files.remote.staged: an object's key decides where its copy goes, and never outside the staging folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.errors import DataError
from kcli.files import remote


def test_an_object_is_copied_under_its_key(tmp_path: Path) -> None:
    assert remote.staged(tmp_path, "s3/bucket/shapes/a/1.png", "s3://bucket/shapes/a/1.png", "data.path") == \
        (tmp_path / "s3/bucket/shapes/a/1.png").resolve()


@pytest.mark.parametrize("name", ["../../etc/cron.d/x", "s3/bucket/shapes/../../../../x.png", "a/../../x"])
def test_a_key_that_leads_out_of_the_staging_folder_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match="leads out of the folder it is copied into") as caught:
        remote.staged(tmp_path / "root", name, f"s3://bucket/{name}", "data.path")
    assert caught.value.key == "data.path"
    assert not any(tmp_path.iterdir())   # nothing written
