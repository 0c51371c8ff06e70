"""Pictures: ``hwgen sweep``'s Pareto plot, ``hwgen check --plot`` and ``hwgen allocate
--pareto``. Each returns ``False``
and writes nothing without matplotlib (``pip install 'hwgen[plot]'``, in ``[dev]``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_pareto", "plot_check", "plot_allocation_front", "written_by_hwgen",
           "SOFTWARE"]

#: The PNG text field every picture hwgen writes carries (so that it may replace it).
SOFTWARE = "hwgen"


def written_by_hwgen(path: Path) -> bool:
    """Whether ``path`` is a PNG whose ``Software`` text field says hwgen wrote it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00" + SOFTWARE.encode() in head


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pareto(rows: list[dict], path: Path, title: str) -> bool:
    """Inferences/s at fmax against the fraction of the device's logic, one colour per
    board, the Pareto front joined; ``False`` (nothing written) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for board in sorted({r["board"] for r in rows if r.get("built")}):
        mine = [r for r in rows if r.get("built") and r["board"] == board]
        xs = [r["logic"] / r["logic_available"] for r in mine]
        ys = [r["inferences_per_second_at_fmax"] for r in mine]
        dots = ax.scatter(xs, ys, label=board, alpha=0.7)
        front = sorted((r["logic"] / r["logic_available"], r["inferences_per_second_at_fmax"])
                       for r in mine if r["pareto"])
        if front:
            ax.plot(*zip(*front, strict=True), color=dots.get_facecolor()[0], linewidth=1)
        for r, x, y in zip(mine, xs, ys, strict=True):
            ax.annotate(str(r["fold"]), (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("logic used (fraction of the device)")
    ax.set_ylabel("inferences/s at fmax")
    ax.set_yscale("log")
    _finish(plt, fig, ax, path, title)
    return True


def plot_check(net_plan, rows: dict[str, dict[str, float]], available: dict[str, float],
               path: Path, title: str, logic_name: str) -> bool:
    """Two panels: each layer's cycles per inference (the bottleneck in red, the converters'
    cycles as a line), and each layer's share of the device per resource (``rows``: per
    layer name, ``logic``, ``ffs``, ``bram``, ``spram``, ``dsp``; ``available`` the
    device's)."""
    plt = _pyplot()
    if plt is None:
        return False
    names = [lp.name for lp in net_plan.layers]
    cycles = [lp.cycles for lp in net_plan.layers]
    bottleneck = net_plan.bottleneck
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(7, 0.6 * len(names) + 3), 7),
                                      sharex=True)
    top.bar(names, cycles, color=["tab:red" if n == bottleneck else "tab:blue"
                                  for n in names])
    top.set_yscale("log")
    top.set_ylabel("cycles per inference")
    top.set_title(f"{title}: bottleneck {bottleneck} "
                  f"({net_plan.cycles_per_inference:,} cycles)")
    top.grid(True, axis="y", alpha=0.3)
    keys = [k for k in ("logic", "ffs", "bram", "spram", "dsp") if available.get(k)]
    labels = {"logic": logic_name, "ffs": "flip-flops", "bram": "block RAM", "spram": "SPRAM",
              "dsp": "DSP"}
    width = 0.8 / max(len(keys), 1)
    for i, key in enumerate(keys):
        shares = [100 * rows.get(n, {}).get(key, 0.0) / available[key] for n in names]
        bottom.bar([j + (i - (len(keys) - 1) / 2) * width for j in range(len(names))],
                   shares, width=width, label=labels[key])
    bottom.set_ylabel("% of the device")
    bottom.set_xticks(range(len(names)), names, rotation=45, ha="right")
    bottom.legend(fontsize=8)
    bottom.grid(True, axis="y", alpha=0.3)
    _save(plt, fig, path)
    return True


def plot_allocation_front(rows: list[dict], path: Path, title: str) -> bool:
    """Accuracy (or, for a network without classes, the output error) against weight memory:
    each method's allocations over its budgets (joined) and the uniform widths (labelled by
    their width); ``rows`` as :func:`hwgen.allocation.allocate.front` gives them."""
    plt = _pyplot()
    if plt is None:
        return False
    fitting = [r for r in rows if r.get("fits", True)]
    measure = "accuracy" if all(r.get("accuracy") is not None for r in fitting) else "loss"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(r["kind"] for r in rows if r["kind"] != "uniform"):
        points = sorted((r["weight_kb"], r[measure]) for r in rows
                        if r["kind"] == method and r["fits"])
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"allocated ({method})")
    uniform = [r for r in rows if r["kind"] == "uniform"]
    ax.scatter([r["weight_kb"] for r in uniform], [r[measure] for r in uniform],
               marker="s", color="grey", label="uniform")
    for r in uniform:
        ax.annotate(f"{r['bits']}", (r["weight_kb"], r[measure]), fontsize=7,
                    xytext=(3, -9), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("weight memory (KiB)")
    if measure == "loss":
        ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_ylabel("accuracy" if measure == "accuracy" else
                  "output error (mean square, relative)")
    _finish(plt, fig, ax, path, title)
    return True


def _finish(plt, fig, ax, path: Path, title: str) -> None:
    """One-panel pictures: the title, grid and legend, then :func:`_save`."""
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[1]:  # nothing labelled (no point built): no legend
        ax.legend()
    _save(plt, fig, path)


def _save(plt, fig, path: Path) -> None:
    """The figure as a PNG that says hwgen wrote it (:data:`SOFTWARE`), then closed."""
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": SOFTWARE})
    plt.close(fig)
