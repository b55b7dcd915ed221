"""Where the cached rootfs lives and when it is rebuilt (no debootstrap run here)."""

from __future__ import annotations

from tests.hosts import rootfs


def test_cache_dir_defaults_outside_the_repo_and_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.delenv("INFEROPS_TEST_HOSTS_CACHE", raising=False)
    assert str(rootfs.rootfs_path()).startswith("/var/cache/inferops/test-hosts/bookworm-")
    monkeypatch.setenv("INFEROPS_TEST_HOSTS_CACHE", str(tmp_path))
    assert rootfs.rootfs_path().parent == tmp_path


def test_changing_the_package_list_or_customisation_changes_the_key(monkeypatch):
    key = rootfs.cache_key()
    assert rootfs.cache_key() == key  # stable for the same inputs
    monkeypatch.setattr(rootfs, "PACKAGES", (*rootfs.PACKAGES, "htop"))
    with_htop = rootfs.cache_key()
    assert with_htop != key
    monkeypatch.setattr(rootfs, "CUSTOMISE_VERSION", rootfs.CUSTOMISE_VERSION + "-next")
    assert rootfs.cache_key() not in (key, with_htop)


def test_a_complete_cached_rootfs_is_reused_without_building(monkeypatch, tmp_path):
    monkeypatch.setenv("INFEROPS_TEST_HOSTS_CACHE", str(tmp_path))
    target = rootfs.rootfs_path()
    target.mkdir(parents=True)
    (target / ".inferops-complete").write_text(rootfs.cache_key())

    def no_build(*args, **kwargs):
        raise AssertionError("debootstrap must not run for a complete cache")

    monkeypatch.setattr(rootfs.subprocess, "run", no_build)
    assert rootfs.ensure_rootfs(log=lambda _: None) == target
