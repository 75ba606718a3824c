"""Batch scoring: the model's inference graph in ONNX (fp32, or int8 behind a validation gate), ONNX
Runtime sessions on Ray Data actors, and the per-run commits of ecg_scores and patient_findings."""
