"""The chapters' display helpers: tables, labelled lines, mean ± std, run settings, verdict rows."""
import pytest

from frbook.report import VERDICT_HEADER, markdown_table, mean_std, settings, show, verdict_rows
from frbook.results import verdict


def test_markdown_table_renders_every_cell_and_rejects_a_short_row():
    table = markdown_table(["loss", "n"], [["arcface", 3], ["cosface", 2]])
    assert table.data.splitlines() == ["| loss | n |", "|---|---|", "| arcface | 3 |", "| cosface | 2 |"]
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        markdown_table(["loss", "n"], [["arcface", 3], ["cosface"]])


def test_show_indents_continuations_and_keeps_a_space_after_a_long_name(capsys):
    show("data", "a " * 50, width=40)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("data:    a") and all(line.startswith(" " * 9 + "a") for line in lines[1:])
    assert all(len(line) <= 40 for line in lines)
    show("commands", "python -m frbook")
    assert capsys.readouterr().out == "commands: python -m frbook\n"


def test_mean_std_and_settings():
    assert mean_std({"mean": 0.91234, "std": 0.0042}) == "91.23 ± 0.42"
    assert mean_std({"mean": 10.4, "std": 1.2}, scale=1, digits=0) == "10 ± 1"
    run = {"loss_params": {"s": 30.000002, "m": 0.5, "grad": "exact", "lamb": None}, "train": {"lr": 3.0}}
    assert settings(run) == "s = 30, m = 0.5, grad = exact"
    assert settings(run, keys=("s", "m"), train_keys=("lr",)) == "s = 30, m = 0.5, lr = 3"
    assert settings({"loss_params": {}}) == "none"
    searched = {"search": {"method": "search", "space": "search_softmax", "mode": "global", "s": 30,
                           "candidates": 4, "epochs": 8}}
    assert settings(searched).startswith("search over a (search_softmax, global mode)")


def test_verdict_rows_name_the_losses_and_the_decision():
    results = [{"label": label, "seed": s, "fold": None, "metrics": {"accuracy": base + 0.01 * s}}
               for label, base in (("a", 0.90), ("b", 0.85)) for s in range(3)]
    results[3]["metrics"]["accuracy"] += 0.001  # b's seed 0: a spread, so the t-test is defined
    row, = verdict_rows(verdict(results, [("a", "b")]), {"a": "ArcFace", "b": "CosFace"})
    assert len(row) == len(VERDICT_HEADER)
    assert row[0] == "ArcFace − CosFace" and row[-1] == "ArcFace > CosFace" and row[3] == "yes"
