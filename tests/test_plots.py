import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from dwsjax.plots import as_display_image, plot_image_grid, plot_training_curves, save_figure


def test_image_grid_layout_titles_and_row_labels():
    images = np.random.default_rng(0).uniform(size=(5, 6, 7, 1))
    fig = plot_image_grid(images, [f"t{i}" for i in range(5)], ncols=3, row_labels=["a", "b"])
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:5]] == ["t0", "t1", "t2", "t3", "t4"]
    assert not axes[5].axison
    assert axes[0].get_ylabel() == "a" and axes[3].get_ylabel() == "b"
    assert axes[0].images[0].get_array().shape == (6, 7)


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="titles"):
        plot_image_grid(np.zeros((2, 4, 4)), ["only one"])
    with pytest.raises(ValueError, match="row labels"):
        plot_image_grid(np.zeros((2, 4, 4)), ncols=1, row_labels=["one"])
    with pytest.raises(ValueError, match="at least one"):
        plot_image_grid([])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        as_display_image(np.zeros((4, 4, 2)))


def test_training_curves_one_line_per_run_split_and_metric():
    epochs = [
        {"epoch": e, **{f"{s}_{m}": float(e) for s in ("train", "val", "test") for m in ("loss", "accuracy")}}
        for e in range(3)
    ]
    fig = plot_training_curves({"plain": epochs, "mixup": epochs}, title="t")
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == len(acc_ax.lines) == 6
    assert {line.get_label() for line in loss_ax.lines} >= {"plain train", "mixup test"}
    assert [list(line.get_xdata()) for line in acc_ax.lines] == [[0, 1, 2]] * 6  # as history.csv and best_epoch
    assert "from 0" in loss_ax.get_xlabel()
    with pytest.raises(ValueError, match="at least one run"):
        plot_training_curves({})


def test_save_figure_writes_atomically(tmp_path):
    path = tmp_path / "sub" / "grid.png"
    save_figure(plot_image_grid(np.zeros((1, 4, 4, 3))), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]
