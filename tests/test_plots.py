"""The pictures: each a PNG that says hwgen wrote it (so hwgen may replace it), and nothing
written without matplotlib."""

from __future__ import annotations

import builtins

import pytest

from hwgen.plots import plot_allocation_front, written_by_hwgen

ROWS = [{"kind": "ilp", "fits": True, "weight_kb": 57.1, "accuracy": 0.933},
        {"kind": "ilp", "fits": False},
        {"kind": "ilp", "fits": True, "weight_kb": 117.6, "accuracy": 0.9825},
        {"kind": "uniform", "bits": 2, "weight_kb": 59.2, "accuracy": 0.0997},
        {"kind": "uniform", "bits": 4, "weight_kb": 118.3, "accuracy": 0.979}]


def test_the_allocation_front_is_a_png_hwgen_may_replace(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "front.png"
    assert plot_allocation_front(ROWS, path, "front")
    assert path.read_bytes().startswith(b"\x89PNG") and written_by_hwgen(path)
    (tmp_path / "mine.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert not written_by_hwgen(tmp_path / "mine.png")


def test_no_matplotlib_writes_nothing(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def without_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_matplotlib)
    assert not plot_allocation_front(ROWS, tmp_path / "front.png", "front")
    assert not (tmp_path / "front.png").exists()


def test_a_sweep_with_no_point_built_plots_without_a_warning(tmp_path):
    """No labelled artist, no legend (matplotlib warns of an empty one)."""
    import warnings

    pytest.importorskip("matplotlib")
    from hwgen.plots import plot_pareto

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_pareto([{"board": "icebreaker", "built": False}], tmp_path / "p.png",
                           "nothing built")
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
