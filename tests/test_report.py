"""The chapters' display helpers: tables, labelled lines, mean ± std, run settings, verdict rows,
loss names, difference cells, verification reports side by side and the rows of a paper's claims."""
import pytest

from frbook.report import (LOSS_NAMES, VERDICT_HEADER, claim_rows, difference_cell, loss_name, markdown_table,
                           mean_std, protocol_settings, settings, show, verdict_rows, verification_table)
from frbook.results import verdict


def test_markdown_table_renders_every_cell_and_rejects_a_short_row():
    table = markdown_table(["loss", "n"], [["arcface", 3], ["cosface", 2]])
    assert table.data.splitlines() == ["| loss | n |", "|---|---|", "| arcface | 3 |", "| cosface | 2 |"]
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        markdown_table(["loss", "n"], [["arcface", 3], ["cosface"]])
    aligned = markdown_table(["loss", "n", "mark"], [["arcface", 3, "x"]], align="lrc")
    assert aligned.data.splitlines()[1] == "|:---|---:|:---:|"
    with pytest.raises(ValueError, match="one of l, r, c per column"):
        markdown_table(["loss", "n"], [["arcface", 3]], align="lx")


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
    run = {"loss_params": {"s": 30.000002, "m": 0.5, "grad": "exact", "lamb": None}, "config": {"optim": {"lr": 3.0}}}
    assert settings(run) == "s = 30, m = 0.5, grad = exact"
    assert settings(run, keys=("s", "m"), optim_keys=("lr",)) == "s = 30, m = 0.5, lr = 3"
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


def test_loss_names_cover_book_chapters_and_unknown_labels_pass_through():
    assert loss_name("arcface") == "ArcFace" and loss_name("my_loss") == "my_loss"
    assert all(chapter.startswith("ch0") for _, chapter in LOSS_NAMES.values())
    chapters = [int(chapter[2:4]) for _, chapter in LOSS_NAMES.values()]
    assert chapters == sorted(chapters)  # in the order of the chapters


def test_difference_cell_stars_decided_rows_only():
    row = {"mean": 0.01234, "p_corrected": 0.0321, "decision": "a > b"}
    assert difference_cell(row) == "+1.23 (p Holm = 0.032) *"
    assert difference_cell(row, star=False) == "+1.23 (p Holm = 0.032)"
    assert difference_cell(dict(row, mean=-0.5, decision="not distinguished"), scale=1) == "-0.50 (p Holm = 0.032)"


def test_claim_rows_one_row_per_claim_one_cell_per_column_and_states():
    paper = {"a": 95.0, "b": 94.5, "c": 94.5}
    claims = [("a", "b", 1), ("b", "c", 0)]
    judged = {"easy": {("a", "b"): ("+1.00: reproduced", "reproduced"),
                       ("b", "c"): ("-0.10: consistent", "consistent")},
              "hard": {("a", "b"): ("+0.20: not distinguished", "not distinguished")}}
    rows, states = claim_rows(claims, judged, paper, name=str.upper)
    assert rows == [["A > B", "+0.50", "+1.00: reproduced", "+0.20: not distinguished"],
                    ["B ≈ C", "+0.00", "-0.10: consistent", ""]]
    assert states == {("easy", "a", "b"): "reproduced", ("hard", "a", "b"): "not distinguished",
                      ("easy", "b", "c"): "consistent", ("hard", "b", "c"): None}


def _report(accuracy, folds, fars=(1e-3, 1e-2)):
    return {"accuracy": accuracy, "accuracy_std": 0.0125, "fold_accuracies": folds, "auc": 0.91234,
            "eer": 0.1667, "tar_at_far": [{"far": f, "conservative": 0.25, "nearest": 0.3} for f in fars]}


def test_verification_table_one_row_per_report_in_percent_and_same_fars_only():
    table = verification_table({"pixels": _report(0.6388, [0.61, 0.665]), "cnn": _report(0.6582, [0.6, 0.7])},
                               "LFW").data.splitlines()
    assert table[0] == ("| LFW | accuracy (%) | fold accuracies (%) | AUC | EER (%) | TAR@FAR=0.001 (%), cons. / near. "
                        "| TAR@FAR=0.01 (%), cons. / near. |")
    assert table[2] == "| pixels | 63.88 ± 1.25 | 61.0 to 66.5 | 0.9123 | 16.67 | 25.00 / 30.00 | 25.00 / 30.00 |"
    assert table[3].startswith("| cnn | 65.82 ± 1.25 | 60.0 to 70.0 |")
    with pytest.raises(ValueError, match="different FARs"):
        verification_table({"a": _report(0.6, [0.6]), "b": _report(0.6, [0.6], fars=(1e-2,))}, "LFW")


def test_protocol_settings_spell_out_the_protocol_without_machine_or_seed():
    config = {"data": {"kind": "lfw", "path": "/home/me/lfw", "workers": 4, "size": 64, "crop": None},
              "model": {"name": "small_cnn", "params": {"embedding_dim": 128}},
              "train": {"steps": 1200, "seed": 3, "device": "cuda", "milestones": []},
              "loss": {"name": "arcface"}}
    out = protocol_settings(config, sections=("data", "model", "train"))
    assert out == {"data": "kind=lfw, size=64", "model": "name=small_cnn, params.embedding_dim=128",
                   "train": "steps=1200"}
    assert "loss" not in out
