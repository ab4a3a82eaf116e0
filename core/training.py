"""Reference training on scikit-learn's bundled breast cancer data (no download).

Used by ``agent quickstart``: a baseline (logistic regression) and a candidate (random
forest), each measured on the same stratified holdout so their honesty metadata states
what was actually measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.evaluation.basic import classification_metrics
from core.honesty import HonestyMetadata, HonestyWarning, ImplementationStatus

SEED = 42
HOLDOUT_FRACTION = 0.25


@dataclass
class TrainedModel:
    kind: str
    model: Any
    params: dict[str, Any]
    holdout_metrics: dict[str, float]
    honesty: HonestyMetadata


@dataclass
class BreastCancerData:
    train: Any  # DataFrame with a ``target`` column
    holdout: Any

    @property
    def feature_names(self) -> list[str]:
        return [c for c in self.train.columns if c != "target"]


def load_breast_cancer_split(seed: int = SEED) -> BreastCancerData:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    train, holdout = train_test_split(
        frame, test_size=HOLDOUT_FRACTION, random_state=seed, stratify=frame["target"]
    )
    return BreastCancerData(train.reset_index(drop=True), holdout.reset_index(drop=True))


def write_holdout_csv(data: BreastCancerData, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data.holdout.to_csv(path, index=False)
    return path


def train_quickstart_models(data: BreastCancerData, seed: int = SEED) -> list[TrainedModel]:
    """Fit the baseline and the candidate and measure both on the holdout."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data.train[data.feature_names], data.train["target"]
    specs = [
        (
            "logistic_regression",
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            {"model": "StandardScaler+LogisticRegression", "max_iter": 1000},
        ),
        (
            "random_forest",
            RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
            {"model": "RandomForestClassifier", "n_estimators": 100, "random_state": seed},
        ),
    ]
    out = []
    Xh, yh = data.holdout[data.feature_names], data.holdout["target"]
    for kind, est, params in specs:
        est.fit(X, y)
        res = classification_metrics(yh, est.predict(Xh), est.predict_proba(Xh)[:, 1])
        m = res["metrics"]
        honesty = HonestyMetadata(
            implementation_status=ImplementationStatus.IMPLEMENTED,
            accuracy_claim=(
                f"accuracy {m['accuracy']:.3f}, f1 {m['f1']:.3f}, auc_roc {m['auc_roc']:.3f} "
                f"on a {len(yh)}-row stratified holdout"
            ),
            validation_method=(
                f"holdout: stratified {int(HOLDOUT_FRACTION * 100)}% split of scikit-learn's "
                f"breast cancer dataset, seed {seed}; metrics by scikit-learn"
            ),
            honesty_warning=HonestyWarning.VALIDATED,
        )
        out.append(TrainedModel(kind, est, params, m, honesty))
    return out
