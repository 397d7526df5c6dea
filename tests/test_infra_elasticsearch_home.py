"""Where the Elasticsearch node lives when root runs streamwatch (no server needed)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from infra.elasticsearch_server import ElasticsearchServer
from streamwatch.settings import Settings


def _home(data_dir: Path) -> Path:
    return ElasticsearchServer(Settings(data_dir=data_dir)).home


def test_home_leaves_a_directory_the_node_user_cannot_enter() -> None:
    # Not pytest's tmp_path: its parents are private to root, which is the case under test.
    base = Path(tempfile.mkdtemp(prefix="streamwatch-es-home-"))
    try:
        base.chmod(0o755)
        private = base / "private"
        private.mkdir(mode=0o700)
        open_dir = base / "open"
        open_dir.mkdir(mode=0o755)
        reachable = _home(open_dir / "data")
        assert reachable == (open_dir / "data" / "elasticsearch").resolve()
        blocked = _home(private / "data")
        if os.geteuid() != 0:
            # Not root: the node runs as us, and any directory we can write is fine.
            assert blocked == (private / "data" / "elasticsearch").resolve()
            return
        assert blocked.parent == Path("/var/lib/streamwatch-elasticsearch")
        # One directory per data dir, the same on every call (data kept across restarts).
        assert blocked == _home(private / "data")
        assert blocked != _home(private / "other")
    finally:
        shutil.rmtree(base)
