"""The README's "Your own data" commands, run word for word on a small folder of faces made here.

Each line of the section's bash block is run in-process by ``frbook.__main__.main`` (the words
after ``python -m frbook``), in a temporary folder holding ``photos/`` and a copy of the config the
block names, so the README cannot drift from what the commands do.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from fake_faces import faces_uint8, png
from frbook.__main__ import main

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_block_is_what_this_test_runs():
    commands = readme_commands()
    assert all(c.startswith("python -m frbook ") for c in commands)
    assert [shlex.split(c)[3:5] for c in commands][:4] == [
        ["data", "align"], ["data", "pack"], ["data", "pairs"], ["train", "--config"]]
    assert sum(c.split()[3] == "eval" for c in commands) >= 2


def test_readme_own_data_commands_word_for_word(tmp_path, monkeypatch, capsys):
    pytest.importorskip("facenet_pytorch", reason="'data align' needs facenet-pytorch (requirements.txt)")
    # 16 people x 5 photos, 48x40 (not square), grey PNG, and a file that is not an image
    images = faces_uint8(16, 5, 48, channels=1, seed=3)[..., :, 4:44]
    for k, image in enumerate(images):
        person = tmp_path / "photos" / f"person_{k // 5:02d}"
        person.mkdir(parents=True, exist_ok=True)
        (person / f"IMG_{k % 5}.png").write_bytes(png(image.contiguous()))
    (tmp_path / "photos" / "person_00" / "desktop.ini").write_text("[.ShellClassInfo]")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)

    for command in readme_commands():
        assert main(shlex.split(command)[3:]) == 0, command
    out = capsys.readouterr().out

    record = json.loads((tmp_path / "aligned" / "align.json").read_text())
    assert record["images"] == 80  # every photo, aligned or centre-cropped, none dropped unlisted
    listed = (tmp_path / "aligned" / "not_found.txt").read_text().splitlines()
    assert len(listed) == record["not_found"] == 80 - record["faces_found"]
    assert "packed 80 images of 16 identities (112x112)" in out
    assert (tmp_path / "heldout.bin").is_file() and "3 identities held out" in out
    metrics = [json.loads(line) for line in (tmp_path / "runs/own/metrics.jsonl").read_text().splitlines()]
    assert any("train_accuracy" in m and "train_target_angle_deg" in m for m in metrics)
    assert any("heldout/accuracy" in m for m in metrics)
    assert out.count("3 of 16 identities held out (split seed 0)") == 2  # the model, and pixels
    assert "heldout.bin" in out and "resized to 64x64" in out
