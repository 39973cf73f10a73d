"""`mirada models`: list known models with capabilities and offline availability; pull weights."""

from __future__ import annotations

import argparse
from typing import Any

from mirada.cli import arg, command, print_json
from mirada.vlm.ids import valid_forms


@command(
    "models",
    "list known models, or download one's weights (`mirada models pull ID`)",
    arg(
        "action", nargs="?", choices=["list", "pull"], default="list", help="list (default) or pull"
    ),
    arg("model_id", nargs="?", help="model id to pull, e.g. hf-clip:openai/clip-vit-base-patch32"),
    arg("--json", action="store_true", help="print JSON instead of a table"),
    description=(
        "List the model catalogue with capabilities and whether weights are on this machine.\n"
        "Any id of the forms below also works, not only catalogue entries:\n\n"
        + valid_forms()
        + "\n\n`mirada models pull ID` downloads weights into the Hugging Face cache "
        "(needs internet)."
    ),
)
def models(args: argparse.Namespace) -> int:
    from mirada.errors import MiradaError
    from mirada.vlm.registry import available_offline, list_catalogue, pull_model

    if args.action == "pull":
        if not args.model_id:
            raise MiradaError("usage: mirada models pull MODEL_ID")
        where = pull_model(args.model_id)
        if args.json:
            print_json({"id": args.model_id, "path": where})
        else:
            print(f"{args.model_id}: {where}")
        return 0
    if args.model_id:
        raise MiradaError("`mirada models` lists the catalogue; did you mean `models pull ID`?")

    rows: list[dict[str, Any]] = [
        {
            "id": e.id,
            "title": e.title,
            "family": e.family,
            "capabilities": sorted(e.capabilities),
            "description": e.description,
            "available_offline": available_offline(e.id),
            "latency_only": e.latency_only,
        }
        for e in list_catalogue()
    ]
    if args.json:
        print_json(rows)
        return 0
    width = max(len(r["id"]) for r in rows)
    print(f"{'ID':<{width}}  {'CAPABILITIES':<18}  OFFLINE  TITLE")
    for r in rows:
        caps = ",".join(r["capabilities"])
        print(
            f"{r['id']:<{width}}  {caps:<18}  {'yes' if r['available_offline'] else 'no':<7}  "
            f"{r['title']}"
        )
    if any(r["latency_only"] for r in rows):
        print(
            "\n[latency only]: random weights at the real size; for --task benchmark only "
            "(speed and memory are the real model's, outputs are meaningless)"
        )
    return 0
