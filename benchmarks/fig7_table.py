"""Fig. 7 over the five shipped paintings: one Markdown table from `benchmarks.fig7`'s records.

    python -m benchmarks.fig7_table fig7_theta9_1575

Reads benchmarks/results/<PREFIX>_<painting>.json for each shipped painting that has one (`python -m
benchmarks.fig7 ... --style embedded:<painting> --name <PREFIX>_<painting>`). Per painting: the style term of each
start against that painting (how style-neutral M(I_c; theta) is, where the record has it), the loss of Gatys et al.
from the photo and from M(I_c; theta) at the snapshot steps, and the step at which the photo-started run reaches
the other's final loss. Writes benchmarks/results/<PREFIX>.md.
"""

import argparse

from benchmarks import figures
from benchmarks.common import RESULTS


def row(name, record):
    """One table row of a fig7 record for painting `name`."""
    at, terms = record["loss_at_snapshots"], record.get("start_style_terms")
    steps = [str(s) for s in record["snapshot_steps"]]
    start = f"{terms['content_init'][name]:.4f} / {terms['neutral_init'][name]:.4f}" if terms else "-"
    losses = [f"{at['content_init'][s]['loss']:.1f} / {at['neutral_init'][s]['loss']:.1f}" for s in steps]
    reach = record["content_init_steps_to_reach_neutral_init_at"][steps[-1]]
    return [name, start, *losses, "never" if reach is None else str(reach)]


def table(records):
    """Markdown for {painting: fig7 record} (all with the same snapshot steps)."""
    steps = next(iter(records.values()))["snapshot_steps"]
    head = ["painting", "style term at the start"] + [f"loss at {s}" for s in steps] + [
        "photo run reaches the other's final loss at step"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row(n, r)) + " |" for n, r in records.items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.fig7_table", description=__doc__.splitlines()[0])
    p.add_argument("prefix", help="the records' name before _<painting> (fig7 --name)")
    args = p.parse_args(argv)
    records = figures.painting_records(RESULTS, args.prefix)
    if not records:
        p.error(f"no record {RESULTS}/{args.prefix}_<painting>.json")
    md = (f"### Fig. 7, {args.prefix}: Gatys et al. from the photo / from M(I_c; theta)\n\n" + table(records))
    (RESULTS / f"{args.prefix}.md").write_text(md)
    print(md)
    return md


if __name__ == "__main__":
    main()
