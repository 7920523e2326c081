"""No text file of the repository names a path of the machine it was written on (issue 19: the model card did).

Machine paths: the home folder of the user running the tests, the superuser's home folder, the
repository's own absolute path and the shared folder beside it. Generated files (the model card,
reports) must write them relative (`~/runs/...`, `saved_models/...`).
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
from ship_model import home_relative  # noqa: E402


def _machine_paths() -> list[str]:
    superuser_home = os.path.expanduser("~" + "root")  # spelt so that this file does not name it
    paths = {superuser_home, str(pathlib.Path.home()), str(PROJECT_ROOT), str(PROJECT_ROOT.parent / "shared")}
    return sorted(path.rstrip("/") for path in paths if path.rstrip("/") not in ("", "/"))


def _repository_text_files() -> list[pathlib.Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (or no git): the repository's files cannot be listed")
    files = []
    for name in listed.decode().split("\0"):
        path = PROJECT_ROOT / name
        if name and path.is_file() and not path.is_symlink():
            files.append(path)
    return files


def test_no_text_file_names_a_path_of_this_machine():
    pattern = re.compile("|".join(re.escape(path) + r"(?=/|\b|$)" for path in _machine_paths()))
    found = []
    for path in _repository_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary: pictures, model files
        for number, line in enumerate(text.splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "absolute paths of this machine:\n" + "\n".join(found)


def test_the_model_card_writer_makes_home_paths_relative():
    card = "training run `/home/me/runs/bf16`\n  path: /home/me/data/photo_corpus/train128\nkept: /home/meg/x"
    assert home_relative(card, home="/home/me") == (
        "training run `~/runs/bf16`\n  path: ~/data/photo_corpus/train128\nkept: /home/meg/x")
    assert home_relative(f"{os.path.expanduser('~')}/runs/x") == "~/runs/x"
