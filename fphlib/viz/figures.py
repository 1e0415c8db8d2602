"""The figure helpers every plot and app shares: a new or cleared figure or axes for a plot
function, a pyplot-free figure for an app (never shown twice below it), and PNG bytes of a
figure for an image widget."""

import io


def new_axes(ax, figsize=(7.5, 4.0)):
    """``ax`` cleared, or new axes on a new pyplot figure of ``figsize`` when ``ax`` is None."""
    if ax is None:
        import matplotlib.pyplot as plt  # pyplot only when a plot draws on its own figure

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        ax.clear()
    return ax


def new_figure(fig, figsize):
    """``fig`` cleared, or a new pyplot figure of ``figsize`` when ``fig`` is None."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
    else:
        fig.clear()
    return fig


def app_figure(figsize):
    """A pyplot-free Figure for an app: not registered with pyplot, so it is never
    auto-displayed as a second copy below the app, and is garbage-collected like any object."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def figure_png(fig, dpi=96, title=None):
    """PNG bytes of a matplotlib Figure (``title`` stored as the PNG's Title text chunk)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Title": title} if title else None)
    return buf.getvalue()
