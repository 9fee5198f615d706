"""VADER sentiment (Hutto & Gilbert 2014, the ``vaderSentiment`` package): the project's offline
gold reward for generated preference pairs and the offline judge of the PPO stage.

The compound score lies in [−1, 1]; the lexicon ships inside the package, so it works offline.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _analyzer():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ImportError("the offline gold reward needs `pip install vaderSentiment`") from err
    return SentimentIntensityAnalyzer()


def vader_compound(texts: list[str]) -> list[float]:
    """VADER's compound sentiment of each text."""
    analyzer = _analyzer()
    return [float(analyzer.polarity_scores(text)["compound"]) for text in texts]
