"""Where MLflow writes: the tracking URI, an experiment with an explicit artifact location, run look-up."""

from __future__ import annotations

from pathlib import Path


def artifact_root(tracking_uri: str) -> str | None:
    """Local artifacts next to a sqlite database (`<db folder>/mlartifacts`); a server decides its own."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def use_experiment(tracking_uri: str, name: str) -> str:
    """Point MLflow at ``tracking_uri`` and make ``name`` the active experiment; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root(tracking_uri)
        experiment_id = mlflow.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def find_run(tag: str, value: str) -> str | None:
    """The id of the active experiment's latest run tagged ``tag=value`` (a job started again)."""
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.`{tag}` = '{value}'",
        order_by=["start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None
