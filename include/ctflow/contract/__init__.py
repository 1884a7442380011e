"""The names the layers of ctflow share: one home for each, importing nothing heavy.

* :mod:`ctflow.contract.mlflow_tags`: MLflow tag (and model-metadata) names on runs, versions, experiments;
* :mod:`ctflow.contract.tasks`: DAG ids and task ids (the UI and the approval step read XComs by them);
* :mod:`ctflow.contract.assets`: the assets a pipeline's DAGs announce and listen to;
* :mod:`ctflow.contract.monitoring`: what a monitoring run leaves in MLflow for the UI to read.

A writer and its readers import the name from here, so a rename cannot split them (the UI once
read a metric the monitoring step had renamed and showed "ok" during a breach). The UI imports
this package inside the api-server: keep it free of pandas, MLflow, Feast and scikit-learn.
"""
