"""frossl_plugin.host.checkout.find_host: which solo-learn checkout the scripts and tests use."""

import importlib.util

import pytest

from frossl_plugin.host.checkout import find_host


def fake_checkout(root):
    (root / "solo").mkdir(parents=True)
    (root / "main_pretrain.py").write_text("")
    return root


def test_an_explicit_path_wins_over_the_environment(tmp_path, monkeypatch):
    explicit = fake_checkout(tmp_path / "explicit")
    monkeypatch.setenv("SOLO_LEARN_PATH", str(fake_checkout(tmp_path / "env")))
    assert find_host(str(explicit)) == explicit.resolve()
    assert find_host() == (tmp_path / "env").resolve()


@pytest.mark.parametrize("origin", ["--host", "SOLO_LEARN_PATH"])
def test_a_folder_that_is_not_a_checkout_is_named(tmp_path, monkeypatch, origin):
    (tmp_path / "solo").mkdir()  # but no main_pretrain.py
    monkeypatch.setenv("SOLO_LEARN_PATH", str(tmp_path))
    with pytest.raises(ValueError, match=rf"{origin} points at .* not a solo-learn checkout"):
        find_host(str(tmp_path) if origin == "--host" else None)


def test_nothing_found_says_how_to_get_the_host(monkeypatch):
    monkeypatch.delenv("SOLO_LEARN_PATH", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="solo-learn not found: .*SOLO_LEARN_PATH.*git clone"):
        find_host()
