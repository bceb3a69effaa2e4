"""scripts/rerun_results.py: the one list of commands that writes book/results, and its check."""
import importlib.util
import json
import subprocess
import sys

import pytest

from frbook.experiment import load_comparison
from frbook.provenance import REPO

SCRIPT = REPO / "scripts" / "rerun_results.py"


def load_script():
    spec = importlib.util.spec_from_file_location("rerun_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_result_folder_has_its_commands():
    rerun = load_script()
    folders = {path.name for path in (REPO / "book" / "results").iterdir() if path.is_dir()}
    # Every folder of the book has its commands; the list may hold folders the book does not read yet.
    assert folders <= set(rerun.FOLDERS), folders - set(rerun.FOLDERS)
    names = [name for name, _, _ in rerun.STEPS]
    assert len(names) == len(set(names))


def test_every_config_and_script_of_the_list_exists_and_is_valid():
    rerun = load_script()
    for _, _, commands in rerun.STEPS:
        for command in commands:
            for part in command:
                if part.startswith(("configs/", "scripts/")):
                    assert (REPO / part).exists(), part
            if "compare" in command:
                config = command[command.index("--config") + 1]
                load_comparison(REPO / config)  # raises on an invalid entry
    lfw = [step for step in rerun.STEPS if step[1] == "compare_lfw_cpu"]
    folds = load_comparison(REPO / "configs" / "compare_lfw_cpu.yaml")["compare"]["folds"]
    assert len(lfw) == len(folds) == 10


def test_status_says_whether_the_files_share_one_clean_commit(tmp_path):
    rerun = load_script()

    def write(folder, name, commit, dirty):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(json.dumps(
            {"provenance": {"git_commit": commit, "git_dirty": dirty, "date": "2026-12-07T10:00:00"}}))

    write("a", "x.json", "1" * 40, False)
    write("b", "y.json", "1" * 40, False)
    rows, ok = rerun.status(tmp_path)
    assert ok and [name for name, _ in rows] == ["a", "b"] and rows[0][1]["files"] == 1
    write("b", "z.json", "1" * 40, True)
    assert not rerun.status(tmp_path)[1]
    write("b", "z.json", "2" * 40, False)
    rows, ok = rerun.status(tmp_path)
    assert not ok and rows[1][1]["commits"] == {"1" * 10: 1, "2" * 10: 1}


def test_the_command_line_lists_checks_and_refuses_unknown_steps():
    listed = subprocess.run([sys.executable, str(SCRIPT), "--list", "--only", "tml_cpu"], capture_output=True,
                            text=True, check=True).stdout
    assert "configs/tml_cpu.yaml" in listed and "compare_lfw_cpu" not in listed
    bad = subprocess.run([sys.executable, str(SCRIPT), "--run", "--only", "no_such_step"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown step or folder: no_such_step" in bad.stderr
    status = subprocess.run([sys.executable, str(SCRIPT), "--status"], capture_output=True, text=True)
    assert status.returncode in (0, 1) and "one clean commit:" in status.stdout


@pytest.mark.parametrize("argv", [["--list", "--jobs", "0"], ["--status", "--threads", "0"]])
def test_bad_counts_are_refused(argv):
    with pytest.raises(SystemExit) as exit_:
        load_script().main(argv)
    assert exit_.value.code == 2


def test_commands_write_under_dest_never_over_the_tracked_files(tmp_path):
    rerun = load_script()
    for step in rerun.STEPS:
        commands = rerun.commands_of(step, tmp_path, "cpu")
        text = " ".join(part for command in commands for part in command)
        assert "book/results" not in text and "{out}" not in text, step[0]
        assert str(tmp_path / step[1]) in text, step[0]  # every step writes into its own folder
        assert commands[0][0] in (sys.executable, "mkdir", "cp", "env")
        assert all(command[-2:] == ["--device", "cpu"] for command in commands if "compare" in command)
        # A step that did not finish runs again: its training must not refuse the folder it left.
        assert all("--force" in command for command in commands if "train" in command[1:4]), step[0]


def test_a_step_is_skipped_once_its_result_files_exist_but_a_comparison_never(tmp_path):
    rerun = load_script()
    steps = {name: step for step in rerun.STEPS for name in [step[0]]}
    transfer, lfw = steps["synth_transfer"], steps["compare_lfw_cpu-fold0"]
    assert not rerun.finished(transfer, tmp_path)
    (tmp_path / "synth_transfer").mkdir()
    (tmp_path / "synth_transfer" / "arcface_synth_on_lfw.json").write_text("{}")
    assert rerun.finished(transfer, tmp_path)
    (tmp_path / "compare_lfw_cpu").mkdir()
    assert not rerun.finished(lfw, tmp_path)  # the comparison decides which of its runs are left
    # Every step that is not a comparison names a result file under the destination to check.
    for step in rerun.STEPS:
        commands = rerun.commands_of(step, tmp_path, None)
        if not any("compare" in command for command in commands):
            assert any(part.startswith(str(tmp_path)) and part.endswith(".json")
                       for command in commands for part in command), step[0]


def test_no_two_steps_share_the_checkpoints_of_a_run():
    # Two steps that run the same comparison's runs into one --runs folder would share checkpoints:
    # the second would find each run trained and only evaluate it again.
    rerun = load_script()
    seen = {}
    for step, _, commands in rerun.STEPS:
        for command in (c for c in commands if "compare" in c):
            config = rerun.flag_values(command, "--config")[0]
            runs = (rerun.flag_values(command, "--runs") or [f"runs/{config}"])[0]
            folds = tuple(rerun.flag_values(command, "--folds") or ())
            assert (config, runs, folds) not in seen, (step, seen.get((config, runs, folds)))
            seen[config, runs, folds] = step


def test_the_status_counts_the_runs_each_folder_should_hold():
    rerun = load_script()
    lfw = rerun.expected_files("compare_lfw_cpu")
    assert len(lfw) == 9 * 10 and "search_softmax-fold9-seed0.json" in lfw
    threads = rerun.expected_files("compare_all_cpu_2threads")
    assert threads == {f"{label}-seed{seed}.json" for label in ("softmax", "cosface", "arcface") for seed in range(5)}
    assert rerun.expected_files("p2sgrad_fixes") is None  # a script's folder: no comparison to count
