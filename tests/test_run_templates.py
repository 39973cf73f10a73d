"""Zero-shot templates are checked when the run is queued (issue 12 item 15): every accepted
template gives each class its own prompt through the formatting the match task uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirada.errors import MiradaError
from mirada.metrics.retrieval import ZEROSHOT_TEMPLATES, class_prompts
from mirada.run_options import MatchRunOptions, check_template

MODEL = "hf-clip:openai/clip-vit-base-patch32"


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("a photo of {x}", "has the field {x}"),
        ("a {} with {x}", "has 2 fields"),
        ("a photo of {{}}", "has no {} for the category name"),
        ("no placeholder", "has no {}"),
        ("{} and {}", "has 2 fields"),
        ("a {0[1]}", "has the field {0[1]}"),
        ("a {!r}", "has the field {!r}"),
        ("a {:.2}", "has the field {:.2}"),
        ("a photo of {", "does not parse"),
        ("a photo of }", "does not parse"),
    ],
)
def test_bad_templates_are_refused_with_the_reason_and_an_example(template: str, why: str) -> None:
    with pytest.raises(MiradaError) as info:
        MatchRunOptions.from_dict({"zeroshot_templates": ["a photo of {}.", template]})
    message = str(info.value)
    assert repr(template) in message and why in message
    assert 'e.g. "a photo of {}."' in message


@pytest.mark.parametrize("template", ["a photo of {}.", "{0}", "{{literal}} {}", "{}"])
def test_accepted_templates_give_each_class_its_own_prompt(template: str) -> None:
    check_template(template)
    opts = MatchRunOptions.from_dict({"zeroshot_templates": [template]})
    assert opts.zeroshot_templates is not None
    prompts = class_prompts(["cat", "dog"], opts.zeroshot_templates)
    assert prompts[0] != prompts[1] and "cat" in prompts[0][0]


def test_the_default_templates_pass_the_same_check() -> None:
    for template in ZEROSHOT_TEMPLATES:
        check_template(template)


def test_the_cli_refuses_a_bad_template_before_queueing(
    mirada_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mirada.cli import main
    from mirada.db import write_session
    from mirada.db.models import Dataset
    from mirada.queries.runs import list_runs

    with write_session() as s:
        s.add(Dataset(name="tpl", source_format="csv"))
    args = ["queue", "--dataset", "tpl", "--model", MODEL, "--task", "match"]
    assert main([*args, "--template", "a photo of {{}}"]) != 0
    err = capsys.readouterr().err
    assert "has no {} for the category name" in err and "Traceback" not in err
    assert main([*args, "--template", "x {x}"]) != 0
    assert "has the field {x}" in capsys.readouterr().err
    assert list_runs() == []
    assert main([*args, "--template", "a sketch of {}", "--json"]) == 0
    assert len(list_runs()) == 1
