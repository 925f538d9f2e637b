"""The equal tuning budget of comparisons and the selection split it is scored on."""

import math

import pytest
from helpers import write_tiny_image_folder
from test_report import write_job

from frossl_plugin.compare.image_folder import carve_selection, class_images
from frossl_plugin.compare.tuning import (
    choose,
    merge_selection,
    parse_axis,
    parse_method_axis,
    read_selection,
    selection_markdown,
    trial_grid,
    trial_scores,
    trial_seed_scores,
    write_selection,
)


def test_axes_are_parsed_and_bad_ones_named():
    assert parse_axis("optimizer.lr=0.1, 0.3,1.0") == ("optimizer.lr", ["0.1", "0.3", "1.0"])
    assert parse_method_axis("frossl:method_kwargs.invariance_weight=0.5,1") == (
        "frossl",
        "method_kwargs.invariance_weight",
        ["0.5", "1"],
    )
    # a key the config does not set is added with Hydra's ++ (the prefix is kept)
    assert parse_axis("++method_kwargs.lamb=0.002,0.02") == (
        "++method_kwargs.lamb",
        ["0.002", "0.02"],
    )
    bad_axes = ("optimizer.lr", "=0.1", "++=0.1", "+++a=1", "--lr=0.1", "~a=1", "a=0.1,,0.3")
    for bad in bad_axes:
        with pytest.raises(ValueError, match="expected KEY=V1,V2"):
            parse_axis(bad)
    with pytest.raises(ValueError, match="distinct"):
        parse_axis("optimizer.lr=0.1,0.1")
    with pytest.raises(ValueError, match="expected METHOD:KEY=V1,V2"):
        parse_method_axis("method_kwargs.invariance_weight=0.5,1")


def test_every_method_gets_the_product_of_the_shared_and_its_own_axes():
    grid = trial_grid(
        ["frossl", "vicreg"],
        shared=["optimizer.lr=0.1,0.3"],
        own=[
            "frossl:method_kwargs.invariance_weight=0.5,1",
            "vicreg:method_kwargs.sim_loss_weight=15,25",
        ],
    )
    assert grid["frossl"] == [
        ["optimizer.lr=0.1", "method_kwargs.invariance_weight=0.5"],
        ["optimizer.lr=0.1", "method_kwargs.invariance_weight=1"],
        ["optimizer.lr=0.3", "method_kwargs.invariance_weight=0.5"],
        ["optimizer.lr=0.3", "method_kwargs.invariance_weight=1"],
    ]
    assert len(grid["vicreg"]) == 4
    # byol has no own axis: 2 trials against 4 is not an equal budget
    assert "unequal tuning budgets {'frossl': 4, 'vicreg': 4, 'byol': 2}" in _error(
        trial_grid,
        ["frossl", "vicreg", "byol"],
        ["optimizer.lr=0.1,0.3"],
        [
            "frossl:method_kwargs.invariance_weight=0.5,1",
            "vicreg:method_kwargs.sim_loss_weight=15,25",
        ],
    )
    assert "not among --methods" in _error(trial_grid, ["frossl"], [], ["vicreg:a=1,2"])
    assert "tuned twice" in _error(trial_grid, ["frossl"], ["a=1,2"], ["frossl:a=3,4"])
    assert "tuned twice" in _error(trial_grid, ["frossl"], ["a=1,2"], ["frossl:++a=3,4"])
    assert trial_grid(["frossl", "vicreg"]) == {"frossl": [[]], "vicreg": [[]]}  # no tuning


def _error(function, *args) -> str:
    with pytest.raises(ValueError) as error:
        function(*args)
    return str(error.value)


def test_the_best_trial_wins_first_on_a_tie_and_nan_never():
    grid = {"frossl": [["lr=0.1"], ["lr=0.3"], ["lr=1.0"]], "vicreg": [["lr=0.1"], ["lr=0.3"]]}
    scores = {
        ("frossl", ("lr=0.1",)): 40.0,
        ("frossl", ("lr=0.3",)): 55.0,
        ("frossl", ("lr=1.0",)): 55.0,
        ("vicreg", ("lr=0.1",)): float("nan"),
    }
    chosen = choose(grid, scores)
    assert chosen["frossl"]["chosen"] == ["lr=0.3"] and chosen["frossl"]["score"] == 55.0
    assert chosen["vicreg"]["chosen"] is None and math.isnan(chosen["vicreg"]["score"])
    assert [row["score"] for row in chosen["frossl"]["trials"]] == [40.0, 55.0, 55.0]


def test_trial_scores_read_the_tuning_sweep(tmp_path):
    for index, (lr, final) in enumerate((("0.1", 41.0), ("0.3", 62.5))):
        write_job(
            tmp_path,
            f"frossl_seed0_{index}",
            "frossl",
            0,
            ["preset=frossl", f"optimizer.lr={lr}"],
            final,
        )
    write_job(tmp_path, "vicreg_seed0_0", "vicreg", 0, ["preset=vicreg", "optimizer.lr=0.1"], 30.0)
    write_job(
        tmp_path,
        "vicreg_seed0_1",
        "vicreg",
        0,
        ["preset=vicreg", "optimizer.lr=0.3"],
        99.0,
        finished=False,
    )
    write_job(
        tmp_path,
        "barlow_twins_seed0_0",
        "barlow_twins",
        0,
        ["preset=barlow_twins", "++lamb=0.02"],
        20.0,
    )
    grid = {method: [["optimizer.lr=0.1"], ["optimizer.lr=0.3"]] for method in ("frossl", "vicreg")}
    grid["barlow_twins"] = [
        ["++lamb=0.005"],
        ["++lamb=0.02"],
    ]  # an added key: matched without its ++
    scores = trial_scores(tmp_path, grid, "online_acc1")
    assert scores[("barlow_twins", ("++lamb=0.02",))] == pytest.approx(20.0)
    assert ("barlow_twins", ("++lamb=0.005",)) not in scores
    assert scores[("frossl", ("optimizer.lr=0.3",))] == pytest.approx(62.5)
    assert scores[("vicreg", ("optimizer.lr=0.1",))] == pytest.approx(30.0)
    assert ("vicreg", ("optimizer.lr=0.3",)) not in scores  # unfinished trials do not count
    chosen = choose(grid, scores)
    assert chosen["frossl"]["chosen"] == ["optimizer.lr=0.3"]


def test_a_trial_over_several_seeds_scores_their_mean_and_needs_every_seed(tmp_path):
    for seed, final in ((0, 70.0), (1, 30.0)):  # seed 1 failed to train: it pulls the mean down
        write_job(tmp_path, f"vicreg_seed{seed}_a", "vicreg", seed, ["optimizer.lr=1.0"], final)
    for seed, final in ((0, 55.0), (1, 53.0)):
        write_job(tmp_path, f"vicreg_seed{seed}_b", "vicreg", seed, ["optimizer.lr=0.3"], final)
    write_job(tmp_path, "frossl_seed0_a", "frossl", 0, ["optimizer.lr=0.3"], 80.0)
    write_job(tmp_path, "frossl_seed1_a", "frossl", 1, ["optimizer.lr=0.3"], 90.0, finished=False)
    grid = {method: [["optimizer.lr=0.3"], ["optimizer.lr=1.0"]] for method in ("vicreg", "frossl")}
    by_seed = trial_seed_scores(tmp_path, grid, "online_acc1")
    assert by_seed[("vicreg", ("optimizer.lr=1.0",))] == pytest.approx({0: 70.0, 1: 30.0})
    scores = trial_scores(tmp_path, grid, "online_acc1", seeds=[0, 1])
    assert scores[("vicreg", ("optimizer.lr=1.0",))] == pytest.approx(50.0)
    assert scores[("vicreg", ("optimizer.lr=0.3",))] == pytest.approx(54.0)
    assert choose(grid, scores)["vicreg"]["chosen"] == ["optimizer.lr=0.3"]  # one seed: 1.0
    assert ("frossl", ("optimizer.lr=0.3",)) not in scores  # its seed 1 is unfinished
    assert trial_scores(tmp_path, grid, "online_acc1", seeds=[0])[
        ("vicreg", ("optimizer.lr=1.0",))
    ] == pytest.approx(70.0)
    record = {
        "methods": choose(grid, scores),
        "seeds": [0, 1],
        "epochs": 30,
        "split": "s",
        "metric": "online top-1",
    }
    for row in record["methods"]["vicreg"]["trials"]:
        row["seed_scores"] = {
            str(seed): by_seed[("vicreg", tuple(row["overrides"]))][seed] for seed in (0, 1)
        }
    for row in record["methods"]["frossl"]["trials"]:
        row["seed_scores"] = {"0": None, "1": None}
    text = "\n".join(selection_markdown(record))
    assert "seeds 0, 1 each (a trial's score: the mean over them), 30 epochs each" in text
    assert "optimizer.lr=1.0 (50.0: 70.0, 30.0)" in text


def test_the_selection_record_and_its_report_section(tmp_path):
    grid = {
        "frossl": [["optimizer.lr=0.1"], ["optimizer.lr=0.3"]],
        "vicreg": [["optimizer.lr=0.1"], ["optimizer.lr=0.3"]],
    }
    chosen = choose(
        grid, {("frossl", ("optimizer.lr=0.3",)): 60.0, ("vicreg", ("optimizer.lr=0.1",)): 50.0}
    )
    record = {
        "methods": chosen,
        "seed": 0,
        "epochs": 4,
        "split": "40 of the 400 training images",
        "metric": "online top-1",
    }
    (tmp_path / "tune").mkdir()
    write_selection(tmp_path / "tune", record)
    read = read_selection(tmp_path)
    assert read["methods"]["frossl"]["chosen"] == ["optimizer.lr=0.3"]
    assert read["methods"]["frossl"]["trials"][0]["score"] is None  # NaN is written as null
    text = "\n".join(selection_markdown(read))
    assert "- budget: 2 trial configuration(s) per method" in text
    assert "- chosen on: 40 of the 400 training images" in text
    assert (
        "| frossl | optimizer.lr=0.3 | 60.0 | optimizer.lr=0.1 (-); optimizer.lr=0.3 (60.0) |"
        in text
    )
    assert read_selection(tmp_path / "elsewhere") is None


def test_a_selection_keeps_the_methods_an_earlier_call_tuned_alike():
    def record(methods, epochs=30):
        entries = {
            m: {"chosen": [f"optimizer.lr={lr}"], "score": 50.0, "trials": []} for m, lr in methods
        }
        return {
            "methods": entries,
            "seed": 0,
            "epochs": epochs,
            "metric": "online top-1",
            "split": "s",
        }

    earlier = record([("frossl", 0.3), ("vicreg", 1.0)])
    merged, dropped = merge_selection(earlier, record([("vicreg", 0.3), ("simclr", 0.3)]))
    assert dropped == []
    assert sorted(merged["methods"]) == ["frossl", "simclr", "vicreg"]
    assert merged["methods"]["vicreg"]["chosen"] == ["optimizer.lr=0.3"]  # the new call wins
    assert merged["methods"]["frossl"] == earlier["methods"]["frossl"]
    # tuned at another budget: the earlier choice is not comparable and is not kept
    merged, dropped = merge_selection(earlier, record([("simclr", 0.3)], epochs=10))
    assert dropped == ["frossl", "vicreg"] and sorted(merged["methods"]) == ["simclr"]
    new = record([("simclr", 0.3)])
    assert merge_selection(None, new) == (new, [])


def test_the_selection_split_is_carved_from_the_training_images_only(tmp_path):
    data = write_tiny_image_folder(
        tmp_path / "data", classes=4, train_per_class=10, val_per_class=3
    )
    split = carve_selection(data / "train", tmp_path / "out", fraction=0.2, seed=0)
    train, selection = class_images(split.train), class_images(split.selection)
    resolved = {name: {p.resolve() for p in images} for name, images in train.items()}
    chosen = {name: {p.resolve() for p in images} for name, images in selection.items()}
    originals = {name: set(images) for name, images in class_images(data / "train").items()}
    validation = {p for images in class_images(data / "val").values() for p in images}
    for name in originals:
        assert len(chosen[name]) == 2 and len(resolved[name]) == 8  # 20 % of every class
        assert not chosen[name] & resolved[name]
        assert chosen[name] | resolved[name] == {p.resolve() for p in originals[name]}
        assert not chosen[name] & validation  # the reported split is never used
    assert "8 of the 40 training images held out per class" in split.description
    again = carve_selection(data / "train", tmp_path / "out", fraction=0.2, seed=0)
    assert again.selection == split.selection
    with pytest.raises(ValueError, match="selection-fraction must be in"):
        carve_selection(data / "train", tmp_path / "out", fraction=1.5)
