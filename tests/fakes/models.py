"""Small trained models registered the way the product does it (for fixtures)."""

from __future__ import annotations

from typing import Any

MODEL = "breast-cancer-classifier"


def register_models(rt: Any, bc_data: Any, trained: Any, name: str = MODEL) -> dict[str, Any]:
    """The two quickstart models logged (with the holdout as a logged dataset) and registered
    through the register_model tool as dana: v1 logistic regression, v2 random forest."""
    from core.training import write_holdout_csv

    holdout = write_holdout_csv(bc_data, rt.settings.home_dir / "data" / "holdout.csv")
    dana = rt.services.policy.human("dana")
    versions = []
    for t in trained:
        run_id = rt.services.registry.log_sklearn_run(
            t.model,
            X_sample=bc_data.train[bc_data.feature_names].head(3),
            honesty=t.honesty,
            run_name=t.kind,
            dataset=bc_data.train,
            eval_datasets={"holdout": bc_data.holdout},
        )
        out = rt.dispatcher.call_or_raise(
            dana,
            "register_model",
            {"name": name, "run_id": run_id, "honesty": t.honesty.model_dump(mode="json")},
        )
        versions.append(out["version"])
    return {
        "name": name,
        "versions": versions,
        "holdout": str(holdout),
        "rt": rt,
        "row": bc_data.holdout[bc_data.feature_names].iloc[0].tolist(),
    }
