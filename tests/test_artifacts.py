"""The artifact lifecycle (exists -> lock -> recheck -> .partial -> rename) and the lock that keeps two processes
from building one artifact at once."""

import subprocess
import sys
import textwrap

import pytest

from fac_lightning.artifacts import artifact_lock, ensure_artifact, partial_dir


def test_a_failed_build_leaves_its_partial_folder_to_resume_and_a_finished_one_is_reused(tmp_path):
    final, calls = tmp_path / "a", []

    def killed(work):
        (work / "chunk-1").write_text("done before the kill")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_artifact(final, killed)
    assert not final.exists() and (partial_dir(final) / "chunk-1").exists()

    def resume(work):
        calls.append(sorted(p.name for p in work.iterdir()))  # sees what the killed build left
        (work / "chunk-1").unlink()
        (work / "table").write_text("complete")

    assert ensure_artifact(final, resume) == final
    assert calls == [["chunk-1"]] and sorted(p.name for p in final.iterdir()) == ["checksums.json", "table"]
    assert not partial_dir(final).exists()
    ensure_artifact(final, lambda work: pytest.fail("an existing artifact is rebuilt"))


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
