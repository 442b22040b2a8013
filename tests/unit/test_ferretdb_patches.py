"""FerretDB's source fixes: unified diffs applied in name order by `git apply`; one that
does not apply stops provisioning with its name; the build key follows their contents."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hub.provision import ferretdb
from hub.provision.process import ProvisionError

_PATCH = """\
Say hello properly.

diff --git a/pkg/greet.go b/pkg/greet.go
--- a/pkg/greet.go
+++ b/pkg/greet.go
@@ -1,2 +1,2 @@
 package pkg
-const Greeting = "hi"
+const Greeting = "hello"
"""


def _source(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "greet.go").write_text('package pkg\nconst Greeting = "hi"\n')
    return root


@pytest.fixture
def patch_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "patches"
    folder.mkdir()
    monkeypatch.setattr(ferretdb, "PATCH_DIR", folder)
    return folder


def test_the_shipped_patches_are_found_in_name_order() -> None:
    names = [p.name for p in ferretdb.patch_files()]
    assert names == sorted(names) and len(names) >= 3
    for patch in ferretdb.patch_files():
        head = patch.read_text().split("diff --git", 1)[0]
        assert head.strip(), f"{patch.name} does not say why it exists"


def test_patches_apply_even_inside_another_git_checkout(tmp_path: Path, patch_dir: Path) -> None:
    (patch_dir / "0001-greeting.patch").write_text(_PATCH)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    src = _source(checkout / ".hub" / "ferretdb" / "src")
    ferretdb.apply_patches(src)
    assert 'Greeting = "hello"' in (src / "pkg" / "greet.go").read_text()


def test_a_patch_that_does_not_apply_is_named(tmp_path: Path, patch_dir: Path) -> None:
    (patch_dir / "0001-greeting.patch").write_text(_PATCH)
    (patch_dir / "0002-stale.patch").write_text(_PATCH)  # the text it changes is gone
    src = _source(tmp_path / "src")
    with pytest.raises(ProvisionError, match=r"0002-stale\.patch does not apply"):
        ferretdb.apply_patches(src)
    assert 'Greeting = "hello"' in (src / "pkg" / "greet.go").read_text()


def test_no_patches_is_an_error_not_a_plain_build(patch_dir: Path) -> None:
    with pytest.raises(ProvisionError, match="no FerretDB patches"):
        ferretdb.patches_key()


def test_the_build_key_follows_the_patch_contents(patch_dir: Path) -> None:
    patch = patch_dir / "0001-greeting.patch"
    patch.write_text(_PATCH)
    first = ferretdb.patches_key()
    assert ferretdb.patches_key() == first
    patch.write_text(_PATCH.replace("hello", "hello there"))
    assert ferretdb.patches_key() != first
