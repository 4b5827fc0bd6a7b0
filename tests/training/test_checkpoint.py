"""Checkpoints appear whole or not at all, carry a manifest that loading verifies, and never unpickle."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers.runs import tiny_classifier

from ftcli.config.errors import FtcliError
from ftcli.runtime.files import MANIFEST, sha256_of, verify_manifest
from ftcli.training.checkpoint import load_checkpoint, save_checkpoint

TEXTS = ["a fine film", "a dull film", "nothing works here", "everything works here"] * 10


def _model_and_tokenizer(tmp: Path, num_labels: int = 2, seed: int = 0):
    return tiny_classifier(TEXTS, tmp / "tok", num_labels, seed)


@pytest.fixture
def saved(tmp_path: Path):
    """A checkpoint at tmp/ckpt, and the model and tokenizer it holds."""
    model, tok = _model_and_tokenizer(tmp_path)
    save_checkpoint(model, tok, tmp_path / "ckpt", None, {"step": 1})
    return tmp_path / "ckpt", model, tok


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_manifest_lists_every_file_with_its_hash_and_loading_verifies_it(saved) -> None:
    folder, model, _ = saved
    files = json.loads((folder / MANIFEST).read_text())["files"]
    on_disk = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    assert sorted(files) == on_disk and "model.safetensors" in files
    for name, entry in files.items():
        assert entry["sha256"] == sha256_of(folder / name)
        assert entry["bytes"] == (folder / name).stat().st_size
    assert verify_manifest(folder)
    loaded, _, _ = load_checkpoint(folder)
    _assert_same(_weights(loaded), _weights(model))
    assert not list(folder.parent.glob(".ckpt.*"))  # no temporary folders left behind


def test_truncated_weights_are_named_not_loaded(saved) -> None:
    folder, _, _ = saved
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(
        FtcliError, match=rf"model.safetensors is truncated or changed \({size // 2} bytes, {size} saved"
    ):
        load_checkpoint(folder)


def test_a_changed_byte_fails_the_hash(saved) -> None:
    folder, _, _ = saved
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    weights.write_bytes(bytes(data))
    with pytest.raises(FtcliError, match="model.safetensors does not match its sha256"):
        load_checkpoint(folder)


def test_a_missing_file_is_named(saved) -> None:
    folder, _, _ = saved
    (folder / "config.json").unlink()
    with pytest.raises(FtcliError, match="config.json is missing"):
        load_checkpoint(folder)


def test_full_disk_during_a_save_keeps_the_previous_checkpoint(saved, monkeypatch) -> None:
    folder, model, tok = saved
    before = {p.name: sha256_of(p) for p in folder.iterdir()}
    newer, _ = _model_and_tokenizer(folder.parent / "b", seed=1)

    def disk_full(tensors, filename, metadata=None):  # half the bytes land, then the disk is full
        Path(filename).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", disk_full)
    with pytest.raises(
        FtcliError, match="cannot save checkpoint .*the disk is full.*previous checkpoint there is intact"
    ):
        save_checkpoint(newer, tok, folder, None, {"step": 2})
    assert {p.name: sha256_of(p) for p in folder.iterdir()} == before
    assert not list(folder.parent.glob(".ckpt.tmp*"))  # the partial copy is gone: its space is free again
    loaded, _, _ = load_checkpoint(folder)
    _assert_same(_weights(loaded), _weights(model))


CRASH = """
import os, signal, sys
from pathlib import Path
import transformers.modeling_utils as mu
from ftcli.training.checkpoint import load_checkpoint, save_checkpoint

real = mu.safe_save_file
def dies_halfway(tensors, filename, metadata=None):
    real(tensors, filename, metadata=metadata)
    with open(filename, "r+b") as f:
        f.truncate(os.path.getsize(filename) // 2)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 with half the weights on disk
mu.safe_save_file = dies_halfway
model, tok, _ = load_checkpoint(Path(sys.argv[1]))
for p in model.parameters():
    p.data.add_(1.0)
save_checkpoint(model, tok, Path(sys.argv[1]), None, {"step": 2})
"""


def test_kill_9_in_the_middle_of_a_save_leaves_the_previous_checkpoint_loadable(saved, tmp_path) -> None:
    folder, model, tok = saved
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), str(folder)], capture_output=True, text=True)
    assert r.returncode == -9, r.stderr[-2000:]
    assert list(folder.parent.glob(".ckpt.tmp*"))  # the dead process left its half-written copy
    loaded, _, _ = load_checkpoint(folder)
    _assert_same(_weights(loaded), _weights(model))
    # the next save clears the debris and replaces the checkpoint
    newer, _ = _model_and_tokenizer(tmp_path / "b", seed=1)
    save_checkpoint(newer, tok, folder, None, {"step": 3})
    assert not list(folder.parent.glob(".ckpt.tmp*"))
    _assert_same(_weights(load_checkpoint(folder)[0]), _weights(newer))


def test_a_crash_between_the_two_renames_is_recovered(saved) -> None:
    folder, model, _ = saved
    folder.rename(folder.with_name(".ckpt.old12345"))  # the old copy moved aside, the new one never arrived
    loaded, _, _ = load_checkpoint(folder)
    _assert_same(_weights(loaded), _weights(model))
    assert folder.is_dir()


def test_pickle_weights_are_refused_unless_allowed(tmp_path) -> None:
    model, tok = _model_and_tokenizer(tmp_path)
    folder = tmp_path / "pickled"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "model.safetensors").unlink()  # as an older checkpoint or a foreign repo ships it
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    with pytest.raises(FtcliError, match=r"only in pickle format \(pytorch_model.bin\).*eval.allow_pickle=true"):
        load_checkpoint(folder)
    loaded, _, _ = load_checkpoint(folder, allow_pickle=True)  # transformers then uses weights_only=True
    _assert_same(_weights(loaded), _weights(model))


def test_no_torch_load_without_weights_only_and_no_eval_in_ftcli() -> None:
    """A guard for future code: pickle loading and code evaluation stay out of ftcli/."""
    import ast
    import re

    src = Path(__file__).resolve().parents[1] / "ftcli"
    for path in src.rglob("*.py"):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                safe = [k for k in node.keywords if k.arg == "weights_only" and ast.unparse(k.value) == "True"]
                assert safe, f"{path.name}:{node.lineno}: {ast.unparse(node)}"
        assert not re.search(r"(?<![\w.])(eval|exec)\(|pickle\.loads?\(|instantiate\(", text), path.name


FILE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from ftcli.training.checkpoint import load_checkpoint, save_checkpoint
from ftcli.config.errors import FtcliError

model, tok, _ = load_checkpoint(Path(sys.argv[1]))
for p in model.parameters():
    p.data.add_(1.0)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write() instead of a signal
resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))  # no file may grow past 10 kB: the weights won't fit
try:
    save_checkpoint(model, tok, Path(sys.argv[1]), None, {"step": 2})
except FtcliError as e:
    print(e)
    sys.exit(2)
"""


def test_a_real_failed_write_keeps_the_previous_checkpoint(saved) -> None:
    """The kernel refuses the write (RLIMIT_FSIZE → EFBIG, as ENOSPC would on a full disk): no monkeypatching."""
    folder, model, _ = saved
    assert (folder / "model.safetensors").stat().st_size > 10_000
    r = subprocess.run([sys.executable, "-c", FILE_LIMIT, str(folder)], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "cannot save checkpoint" in r.stdout and "File too large" in r.stdout
    assert "previous checkpoint there is intact" in r.stdout
    assert not list(folder.parent.glob(".ckpt.tmp*"))
    loaded, _, _ = load_checkpoint(folder)
    _assert_same(_weights(loaded), _weights(model))
