"""Renderers of a release: the evaluation charts, the one-page summary, the privacy statement and
the data showcase page. Pure (no Spark): they turn computed results into bytes and text that the
pipeline writes; ``report/stage.py`` gathers, with Spark, what the showcase page embeds.
"""
