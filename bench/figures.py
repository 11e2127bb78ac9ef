"""Before/after pictures for docs/quality.md, drawn from the embeddings of a benchmark run.

    python bench/figures.py [--names full,continuous] [--out docs/images] [--panels ivis_infonce_global,umap]

For each of Fashion-MNIST, digits and the swiss roll it draws, side by side, the seed-0
embeddings of ivis with the triplet loss (``ivis``), with the contrastive settings
(``ivis_infonce``, ``ivis_infonce_pn``) and of UMAP, coloured by the workload's labels, as
stored by ``bench/run.sh`` under ``bench/results/raw-NAME/WORKLOAD/LABEL/`` (the folder
of the latest run of that label) (the first of ``--names`` that
has the run). Nothing is retrained, so the
pictures show exactly the runs the report scores. ``--panels`` draws other runs instead, into
``quality-LABEL1-...-WORKLOAD.png``.
"""

import argparse
import json
import os
import sys

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
CAPTIONS = {"ivis": "pn (triplet, default)", "ivis_infonce": "infonce", "ivis_infonce_pn": "infonce_pn",
            "ivis_infonce_global": "infonce_global", "ivis_contrastive": "infonce_global, lr 0.01 (warm-up), stop on embedding",
            "umap": "UMAP", "pca": "PCA"}
PANELS = ("ivis", "ivis_infonce", "ivis_infonce_pn", "umap")
FIGURES = (("fmnist", "Fashion-MNIST, 70,000 rows"), ("digits", "digits, 1,797 rows"),
           ("swissroll", "swiss roll lifted to 300 dimensions, 5,000 rows"))
# Points drawn per panel: enough to show the structure, small enough for a light PNG.
MAX_POINTS = 12_000


def draw(name, title, raw_dirs, labels, out_path, panels=PANELS):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), dpi=80)
    rows = np.random.default_rng(0).permutation(len(labels))[:MAX_POINTS]
    for ax, label in zip(axes, panels):
        caption = CAPTIONS.get(label, label)
        paths = [os.path.join(raw_dir, name, label, "embedding.npy") for raw_dir in raw_dirs]
        path = next((p for p in paths if os.path.exists(p)), paths[0])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(caption, fontsize=10)
        if not os.path.exists(path):
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            continue
        E = np.load(path)[rows]
        ax.scatter(E[:, 0], E[:, 1], c=labels[rows], cmap="tab10" if labels.max() < 10 else "viridis",
                   s=0.5 if len(rows) > 5000 else 3,
                   linewidths=0, rasterized=True)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(out_path)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", default="full,continuous",
                        help="benchmark results names, comma-separated (bench/results/raw-NAME)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(BENCH_DIR), "docs", "images"))
    parser.add_argument("--panels", help="run labels to draw, comma-separated (default: " + ",".join(PANELS) + ")")
    args = parser.parse_args(argv)
    panels = tuple(args.panels.split(",")) if args.panels else PANELS
    prefix = "quality-" if panels == PANELS else "quality-" + "-".join(panels) + "-"
    sys.path.insert(0, BENCH_DIR)
    import workloads

    raw_dirs = [os.path.join(BENCH_DIR, "results", f"raw-{name}") for name in args.names.split(",")]
    os.makedirs(args.out, exist_ok=True)
    written = []
    for name, title in FIGURES:
        out_path = os.path.join(args.out, f"{prefix}{name}.png")
        draw(name, title, raw_dirs, workloads.load(name).y, out_path, panels)
        written.append(out_path)
    print(json.dumps(written))


if __name__ == "__main__":
    main()
