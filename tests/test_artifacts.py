"""The artifact lifecycle (exists -> lock -> recheck -> .partial -> rename) and the lock that keeps two processes
from building one artifact at once."""

import re
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


def build_two_files(work):
    (work / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (work / "sub").mkdir()
    (work / "sub" / "meta.json").write_text('{"a": 1}')


def test_a_finished_artifact_records_size_and_checksum_of_every_file(tmp_path):
    import hashlib
    import json

    final = ensure_artifact(tmp_path / "a", build_two_files)
    files = json.loads((final / "checksums.json").read_text())["files"]
    assert files == {"weights.bin": {"size": 16384, "sha256": hashlib.sha256(bytes(range(256)) * 64).hexdigest()},
                     "sub/meta.json": {"size": 8, "sha256": hashlib.sha256(b'{"a": 1}').hexdigest()}}


@pytest.mark.parametrize("damage", ["truncate", "alter", "delete"])
def test_a_damaged_artifact_is_refused_naming_the_file(tmp_path, damage):
    from fac_lightning import artifacts
    from fac_lightning.artifacts import ArtifactError, verify_artifact

    final = ensure_artifact(tmp_path / "a", build_two_files)
    artifacts._VERIFIED.clear()  # as a new process would
    path = final / "weights.bin"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "alter":
        path.write_bytes(b"\xff" + path.read_bytes()[1:])
    else:
        path.unlink()
    expected = {"truncate": "weights.bin: 100 bytes, 16384 expected (truncated or altered)",
                "alter": "weights.bin: content differs from its checksum (altered)", "delete": "weights.bin: missing"}
    with pytest.raises(ArtifactError, match=re.escape(f"artifact {final} is corrupted and was not used: "
                                                      f"{expected[damage]}. Delete the folder to build it again")):
        ensure_artifact(final, lambda work: pytest.fail("rebuilt although told to refuse"))
    with pytest.raises(ArtifactError, match="weights.bin"):
        verify_artifact(final)


def test_a_damaged_cheap_artifact_is_moved_aside_and_rebuilt(tmp_path):
    from fac_lightning import artifacts

    final = ensure_artifact(tmp_path / "a", build_two_files)
    (final / "sub" / "meta.json").write_text('{"a": 2}')  # same size, other content
    artifacts._VERIFIED.clear()
    assert ensure_artifact(final, build_two_files, on_corrupt="rebuild") == final
    assert (final / "sub" / "meta.json").read_text() == '{"a": 1}'
    assert (tmp_path / "a.corrupt" / "sub" / "meta.json").read_text() == '{"a": 2}'  # kept to look at, not used
    assert not partial_dir(final).exists()


def test_an_artifact_made_before_checksums_is_accepted_and_gets_them(tmp_path, caplog):
    import logging

    from fac_lightning.artifacts import ArtifactError, verify_artifact

    legacy = tmp_path / "old"
    legacy.mkdir()
    build_two_files(legacy)
    with caplog.at_level(logging.INFO, logger="fac_lightning.artifacts"):
        assert ensure_artifact(legacy, lambda work: pytest.fail("rebuilt")) == legacy
    assert "made before artifacts carried checksums" in caplog.text and (legacy / "checksums.json").exists()
    (legacy / "weights.bin").write_bytes(b"short")
    with pytest.raises(ArtifactError, match="weights.bin: 5 bytes, 16384 expected"):
        verify_artifact(legacy)
