"""Fig. 6 over the five shipped paintings: one Markdown table from `benchmarks.fig6`'s records.

    python -m benchmarks.fig6_table fig6_theta9_1575 [--steps 20,50,200]

Reads benchmarks/results/<PREFIX>_<painting>.json for each shipped painting that has one (`python -m
benchmarks.fig6 ... --judge --name <PREFIX>_<painting>`). Per painting: the held-out loss of MetaStyle (theta +
N updates) and Johnson et al. (random init + N updates) at each of --steps, how much lower theta's is, and the
judge's measures of both arms' last snapshot, and issue 22's bar at the last of --steps (theta at least 20% lower,
no measure worse); then the loss of the training batches at the same steps (the mean of
the 20 updates up to each), and the held-out loss at the last step by term (content, style).
Writes benchmarks/results/<PREFIX>.md.
"""

import argparse

from benchmarks import figures
from benchmarks.common import RESULTS

# the judge's measures: record key, column, format, and whether higher is better
JUDGED = (("blob_share", "blob", "{:.2%}", False), ("checkerboard", "checker", "{:.1f}", False),
          ("edges_kept", "edges", "{:.3f}", True), ("deep_content", "deep", "{:.3f}", True),
          ("colour_distance", "colour", "{:.3f}", False), ("texture_distance", "texture", "{:.3f}", False))
BAR = 0.20  # issue 22: theta + N updates at least 20% below random init + N, and no judge's measure worse


def verdict(rec, step):
    """Issue 22's Fig. 6 bar for one record at `step`: "met", or what misses it (the loss, the measures worse)."""
    m, j = loss_at(rec, "metastyle", step), loss_at(rec, "johnson", step)
    missed = [] if 1 - m / j >= BAR else [f"loss {1 - m / j:.1%}"]
    judged = rec.get("judge")
    for key, label, _, higher in JUDGED if judged else ():
        a, b = judged["metastyle"][key], judged["johnson"][key]
        if (a < b) if higher else (a > b):
            missed.append(label)
    if not judged:
        missed.append("not judged")
    return "met" if not missed else "missed: " + ", ".join(missed)


def loss_at(record, arm, step):
    """The held-out loss of `arm` after `step` updates (a step the run evaluated at)."""
    curve = record["curves"][arm]
    if step not in curve["eval_step"]:
        raise ValueError(f"step {step} was not evaluated (eval_step {curve['eval_step']})")
    return curve["eval_loss"][curve["eval_step"].index(step)]


def table(records, steps):
    """Markdown rows for {painting: fig6 record}: losses at `steps` (MetaStyle / Johnson, theta lower by), the
    judge's measures (MetaStyle / Johnson) where the record has them, and issue 22's bar at the last step."""
    head = ["painting"] + [f"loss at {s}" for s in steps] + [f"theta lower at {s}" for s in steps] + [
        label for _, label, _, _ in JUDGED] + [f"bar at {steps[-1]}"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, rec in records.items():
        pairs = [(loss_at(rec, "metastyle", s), loss_at(rec, "johnson", s)) for s in steps]
        judged = rec.get("judge") or {}
        cells = [name] + [f"{m:.0f} / {j:.0f}" for m, j in pairs] + [f"{1 - m / j:.1%}" for m, j in pairs] + [
            f"{fmt.format(judged['metastyle'][k])} / {fmt.format(judged['johnson'][k])}" if judged else "-"
            for k, _, fmt, _ in JUDGED] + [verdict(rec, steps[-1])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


TRAIN_WINDOW = 20  # updates averaged for the training-batch loss (one batch of a few crops is noisy)


def train_table(records, steps):
    """Markdown rows for {painting: fig6 record}: the mean loss of the training batches over the TRAIN_WINDOW
    updates up to each of `steps` (MetaStyle / Johnson, theta lower by), beside the held-out loss of `table`."""
    def mean(rec, arm, step):
        window = rec["curves"][arm]["train_loss"][max(0, step - TRAIN_WINDOW):step]
        return sum(window) / len(window)

    head = ["painting"] + [f"updates {max(1, s - TRAIN_WINDOW + 1)}-{s}" for s in steps] + [
        f"theta lower at {s}" for s in steps]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, rec in records.items():
        pairs = [(mean(rec, "metastyle", s), mean(rec, "johnson", s)) for s in steps]
        lines.append("| " + " | ".join([name] + [f"{m:.0f} / {j:.0f}" for m, j in pairs] +
                                       [f"{1 - m / j:.1%}" for m, j in pairs]) + " |")
    return "\n".join(lines) + "\n"


def terms_at(record, arm, step):
    """The held-out loss of `arm` after `step` updates by term: (alpha * content, beta * style), with the record's
    alpha and beta."""
    curve, settings = record["curves"][arm], record["settings"]
    i = curve["eval_step"].index(step)
    return settings["alpha"] * curve["eval_content"][i], settings["beta"] * curve["eval_style"][i]


def terms_table(records, step):
    """Markdown rows for {painting: fig6 record}: the held-out loss after `step` updates by term (`terms_at`),
    MetaStyle / Johnson and how much lower theta's is: where theta's lead lies."""
    head = ["painting", "alpha x content", "content lower", "beta x style", "style lower"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, rec in records.items():
        (mc, ms), (jc, js) = terms_at(rec, "metastyle", step), terms_at(rec, "johnson", step)
        lines.append(f"| {name} | {mc:.0f} / {jc:.0f} | {1 - mc / jc:.1%} | {ms:.0f} / {js:.0f} | {1 - ms / js:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.fig6_table", description=__doc__.splitlines()[0])
    p.add_argument("prefix", help="the records' name before _<painting> (fig6 --name)")
    p.add_argument("--steps", default="20,50,200", help="updates at which to compare the held-out loss")
    args = p.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        p.error(f"--steps {args.steps}: expected update counts separated by commas, e.g. 20,50,200")
    records = figures.painting_records(RESULTS, args.prefix)
    if not records:
        p.error(f"no record {RESULTS}/{args.prefix}_<painting>.json")
    try:
        md = (f"### Fig. 6, {args.prefix}: held-out loss MetaStyle / Johnson et al. (random init), and the judge's "
              "measures of the last snapshot\n\n" + table(records, steps) +
              f"\nThe loss of the training batches, mean of {TRAIN_WINDOW} updates, MetaStyle / Johnson et al.:\n\n"
              + train_table(records, steps) +
              f"\nThe held-out loss after {steps[-1]} updates by term, MetaStyle / Johnson et al.:\n\n"
              + terms_table(records, steps[-1]))
    except ValueError as e:
        p.error(str(e))
    (RESULTS / f"{args.prefix}.md").write_text(md)
    print(md)
    return md


if __name__ == "__main__":
    main()
