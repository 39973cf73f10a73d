"""Hostile model ids never escape as anything but a MiradaError (issue 12, traceback list).

Ids the parser refuses name the valid forms; ids that parse but point at something that is not
a model fail at load with a MiradaError naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirada.domain import Device
from mirada.errors import MiradaError
from mirada.vlm.errors import ModelIdError
from mirada.vlm.ids import MAX_ID_LENGTH, VALID_FORMS, parse_model_id

REFUSED = [
    "",
    "   ",
    ":",
    "open-clip",
    "open-clip:",
    "open-clip://",
    "open-clip:/",
    "open-clip:ViT-B-32/",
    "open-clip:..",
    "open-clip:../x",
    "open-clip:ViT-B-32/tag:",
    "open-clip:ViT-B-32/t@g",
    "open-clip:ViT-B-32/\x00",
    "open-clip:local-dir:",
    "open-clip:local-dir:\x00",
    "open-clip:local-dir:~no-such-user-h7/x",
    "open-clip:ViT-B-32/~no-such-user-h7/x.pt",
    "hf-clip:..",
    "hf-clip:a\x00b",
    "hf-clip:./a\x00b",
    "hf-clip:a\x1b]0;title\x07",
    "hf-clip:org/\nname",
    "hf-clip:~no-such-user-h7/x",
    "hf-clip:" + "a" * 300,  # one name too long for the file system
    "hf-clip:/" + "a/" * (MAX_ID_LENGTH // 2),
    "hf-clip:ünï/cödé",
    "hf-clip:/tmp/\udcff",
    "hf-clip:org/name:",
    "hf-clip:org/name?",
    "hf-clip:org /name",
    "hf-clip:x/y/z",
    "hf-clip:?",
    "HF-CLIP:x/y",
    "flava:x?pooling=",
    "flava:x?=mean",
    "flava:x?pooling=max",
    "flava:x?pooling=mean&pooling=mean",
    "open-clip:ViT-B-32?pooling=mean",
]


@pytest.mark.parametrize("model_id", REFUSED, ids=lambda s: repr(s)[:40])
def test_the_parser_refuses_with_the_valid_forms(model_id: str) -> None:
    with pytest.raises(ModelIdError) as info:
        parse_model_id(model_id)
    message = str(info.value)
    assert VALID_FORMS in message
    assert len(message) < len(VALID_FORMS) + 600  # a very long id is shown shortened


@pytest.mark.parametrize("model_id", REFUSED[:12] + REFUSED[-8:], ids=lambda s: repr(s)[:40])
def test_queue_validation_refuses_with_a_mirada_error(model_id: str) -> None:
    from mirada.queue import validate_run_request

    with pytest.raises(MiradaError, match="valid model ids"):
        validate_run_request(model_id, "match", "cpu", "fp32", 8)


@pytest.mark.parametrize(
    "model_id",
    [
        "open-clip:ViT-B-32//etc/passwd",  # a file that is not a checkpoint: was a bare IndexError
        "open-clip:ViT-B-32//",  # a directory
        "open-clip:ViT-B-32//no/such/ckpt.pt",
        "open-clip:ViT-B-32/no_such_tag",
        "open-clip:no-such-arch",
        "hf-clip:/",
        "hf-clip:../..",
    ],
)
def test_ids_that_parse_but_name_no_model_fail_at_load_with_a_mirada_error(model_id: str) -> None:
    from mirada.vlm.registry import load_adapter

    with pytest.raises(MiradaError):
        load_adapter(model_id, device=Device.cpu)


def test_a_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    from mirada.vlm.registry import load_adapter

    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"\x80\x02not a pickle at all" * 10)
    with pytest.raises(MiradaError, match=str(bad)):
        load_adapter(f"open-clip:ViT-B-32/{bad}", device=Device.cpu)


def test_the_cli_prints_no_traceback_for_a_hostile_id(
    mirada_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mirada.cli import main
    from mirada.db import write_session
    from mirada.db.models import Dataset

    with write_session() as s:
        s.add(Dataset(name="ids", source_format="csv"))
    for model_id in ["open-clip:local-dir:\x00", "hf-clip:" + "a" * 300, "hf-clip:/tmp/\udcff"]:
        code = main(["queue", "--dataset", "ids", "--model", model_id, "--task", "match"])
        err = capsys.readouterr().err
        assert code != 0 and "valid model ids" in err and "Traceback" not in err
