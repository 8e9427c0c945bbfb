"""Artifact writes: atomic folders and the lock that keeps two processes from building one artifact at once."""

import subprocess
import sys
import textwrap

import pytest

from fac_lightning.artifacts import artifact_lock, atomic_dir


def test_atomic_dir_leaves_nothing_on_failure_and_refuses_to_overwrite(tmp_path):
    final = tmp_path / "a"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "x").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "x").write_text("done")
    with pytest.raises(FileExistsError, match=str(final)), atomic_dir(final):
        pass


def test_second_builder_waits_for_the_first(tmp_path):
    final = tmp_path / "artifact"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from fac_lightning.artifacts import artifact_lock
        with artifact_lock({str(final)!r}):
            print("locked", flush=True)
            time.sleep(1.0)
            Path({str(final)!r}).mkdir()
        """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with artifact_lock(final):
        assert final.is_dir()  # we only got the lock after the holder had finished the artifact
    assert holder.wait(timeout=30) == 0
