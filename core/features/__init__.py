"""Feature store on Chroma (``FeatureStore``) and feature engineering (``engineer_features``).

Importing this package is cheap: chromadb loads when a store is opened.
"""

from core.features.store import FeatureRow, FeatureStore, Neighbour, ViewVersion
from core.features.values import DIMENSION, hash_embedding

__all__ = ["DIMENSION", "FeatureRow", "FeatureStore", "Neighbour", "ViewVersion", "hash_embedding"]
