"""The scatter plot of an embedding, shared by the plotting callbacks and the command line."""

import numpy as np


def scatter_figure(embedding, labels=None, title="", legend_title=None, figsize=(6, 6), dpi=100):
    """A matplotlib Figure of the first two embedding dimensions (a 1-D embedding along x).

    Points are coloured by ``labels`` (one per row) when given; ``legend_title`` adds a legend
    of up to 20 classes. The figure is not attached to pyplot, so no global state changes.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=figsize, dpi=dpi)
    axes = figure.add_subplot()
    x = embedding[:, 0]
    y = embedding[:, 1] if embedding.shape[1] > 1 else np.zeros_like(x)
    size = float(np.clip(4000 / max(len(x), 1), 1, 20))  # visible for 50 points, no blot for 50,000
    if labels is None:
        axes.scatter(x, y, s=size, linewidths=0)
    else:
        labels = np.asarray(labels)
        try:
            classes, codes = np.unique(labels, return_inverse=True)
        except TypeError:  # mixed types: colour by their text
            classes, codes = np.unique(labels.astype(str), return_inverse=True)
        cmap = "tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "viridis"
        points = axes.scatter(x, y, c=codes, cmap=cmap, vmin=0, vmax=max(len(classes) - 1, 1), s=size, linewidths=0)
        if legend_title is not None and len(classes) <= 20:
            handles = [Line2D([], [], marker="o", ls="", color=points.cmap(points.norm(i))) for i in range(len(classes))]
            axes.legend(handles, [str(c) for c in classes], title=legend_title, fontsize=7, markerscale=1.2, loc="best")
    axes.set_xlabel("ivis 1")
    axes.set_ylabel("ivis 2" if embedding.shape[1] > 1 else "")
    axes.set_title(title, fontsize=10)
    return figure
