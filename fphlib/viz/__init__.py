"""Plots and widgets on top of the simulation API and the experiments' scenarios.

``fphlib.viz.plots`` draws seaborn figures from SimResult frames and guest-side state, and holds
the one home of metric labels and units (``SUMMARY_METRICS``, ``GUEST_METRICS``);
``fphlib.viz.tables`` turns summaries and per-guest frames into readable tables;
``fphlib.viz.widgets`` builds the ipywidgets apps of the notebooks (the headline comparison and
the FPHLIB_PROFILE sizes are ``fphlib.experiments.scenarios``); ``fphlib.viz.tour`` the helpers
of the guest-side tour (notebook 01); ``fphlib.viz.block_size`` the block-size study (notebook
05: a cached ``fphlib.sweep`` over ``hint_order``, its plots and widgets);
``fphlib.viz.policies`` the host-policy heatmaps, who-paid charts and widgets (notebook 04);
``fphlib.viz.validation`` the published-vs-fphlib table, figure and app (notebook 06, over
``fphlib.validation``).
"""
