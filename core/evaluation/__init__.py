"""Model evaluation: metrics computed with scikit-learn, reported with their reasons when not computable."""
