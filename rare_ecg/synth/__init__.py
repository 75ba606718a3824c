"""Synthetic longitudinal 12-lead ECG cohorts with a long tail of rare anomalies and ground truth.

``generate_archive(SynthConfig(out=..., patients=...))`` writes a PTB-XL (or MIMIC-IV-ECG) layout
archive with ``annotations.csv`` beside it; ``rare-ecg synth`` is the same from the command line.
Modules, in the order a record is made: calibration (PTB-XL statistics), cohort (patients, visits,
labels), physiology (rates, intervals), beats/anomalies (P and QRS-T templates per label), rhythm
(beat timing), waves (dipole to 12 leads), noise, ecg (one record and its masks), layouts and
wfdb_write (files), archive (parallel generation), preview (PNGs).
"""

from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig

__all__ = ["SynthConfig", "generate_archive"]
