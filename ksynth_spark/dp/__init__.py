"""Differentially private aggregates ("DP marginals", spec §3).

One module per concern:

* :mod:`.settings`: :class:`~.settings.DpSettings`, the DP parameters resolved from the config (§3.1);
* :mod:`.noise`: the noise sources (secure, or seeded for tests);
* :mod:`.budget`: δ, the split of ε and its check, the protected record count (§3.1–3.3);
* :mod:`.percentile`: the DP percentile that sets the allowed contribution Δ (§3.5);
* :mod:`.marginals`: candidates, valid combinations, clipping, noise and thresholds (§3.4);
* :mod:`.postprocess`: consistency post-processing (§3.6);
* :mod:`.stage`: the Spark jobs and the entry point :func:`~.stage.dp_aggregates`.

Only :mod:`.stage` imports pyspark; importing this package imports none of the modules.
"""
