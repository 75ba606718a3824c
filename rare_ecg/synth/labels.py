"""The labels the generator can synthesise: all 71 SCP-ECG statements of PTB-XL.

Each label has a physiological generator (rhythm.py for timing, anomalies.py for morphology), a
MIMIC-IV-ECG machine statement that rare_ecg/resources/labels/mimic_report_rules.csv maps back to the
code, and a ground-truth mask rule: which part of which beats, in which leads, is "the anomaly".

Mask rules (spans at the record's native rate, end exclusive; one row per lead and contiguous span):
- ``record``: the whole record (rhythm disorders: the rate or the rhythm itself is the anomaly);
- ``pr``: P onset to QRS onset of every conducted beat (prolonged AV conduction);
- ``blocked_p``: each non-conducted P wave, from its onset to where its QRS would have ended;
- ``beat``: each ectopic/paced beat, from its P' or QRS onset (pacing spike) to its T end;
- ``run``: the tachycardia run of a paroxysm, first QRS onset to last T end;
- ``p``, ``qrs``, ``qrs_early``, ``delta``, ``st_t``, ``t``: that wave or segment of every
  supraventricular beat, in the leads the anomaly visibly changes (``affected``: where the record with
  the anomaly differs from the same record without it by at least MASK_MIN_MV, and by at least
  MASK_REL_FRACTION of the largest lead difference), or in all leads (``all``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast, get_args

SpanKind = Literal[
    "record", "pr", "blocked_p", "beat", "run", "p", "qrs", "qrs_early", "delta", "st_t", "t"
]  # fmt: skip
LeadRule = Literal["all", "affected"]

MASK_MIN_MV = 0.03
MASK_REL_FRACTION = 0.2


@dataclass(frozen=True)
class LabelSpec:
    code: str
    mimic_statement: str  # machine statement a MIMIC-IV-ECG cart would print for it
    spans: tuple[SpanKind, ...]  # empty: nothing to localise (SR, NORM)
    leads: LeadRule
    chronic: bool  # once present it stays at later visits (onset at a later visit possible)


def _spec(
    code: str, statement: str, spans: str, leads: LeadRule = "affected", chronic: bool = False
) -> LabelSpec:
    kinds = spans.split()
    unknown = [k for k in kinds if k not in get_args(SpanKind)]
    if unknown:
        raise ValueError(f"{code}: span kinds {unknown} are not among {get_args(SpanKind)}")
    return LabelSpec(code, statement, cast(tuple[SpanKind, ...], tuple(kinds)), leads, chronic)


_SPECS = (
    # rhythm (exactly one primary rhythm per record, see PRIMARY_RHYTHMS)
    _spec("SR", "Sinus rhythm", ""),
    _spec("SBRAD", "Sinus bradycardia", "record", "all"),
    _spec("STACH", "Sinus tachycardia", "record", "all"),
    _spec("SARRH", "Sinus arrhythmia", "record", "all"),
    _spec("SVARR", "Supraventricular arrhythmia", "beat", "all"),
    _spec("AFIB", "Atrial fibrillation", "record", "all", chronic=True),
    _spec("AFLT", "Atrial flutter", "record", "all"),
    _spec("SVTAC", "Supraventricular tachycardia", "record", "all"),
    _spec("PSVT", "Paroxysmal supraventricular tachycardia", "run", "all"),
    _spec("PACE", "Ventricular paced rhythm", "beat", "all", chronic=True),
    _spec("BIGU", "Ventricular bigeminy", "beat", "all"),
    _spec("TRIGU", "Ventricular trigeminy", "beat", "all"),
    # ectopy
    _spec("PVC", "Premature ventricular contractions", "beat", "all"),
    _spec("PAC", "Atrial premature complex", "beat", "all"),
    _spec("PRC(S)", "Premature complexes of unknown origin", "beat", "all"),
    # AV conduction
    _spec("1AVB", "1st degree A-V block", "pr", "all", chronic=True),
    _spec("LPR", "Prolonged PR interval", "pr", "all", chronic=True),
    _spec("2AVB", "2nd degree A-V block, Mobitz I (Wenckebach)", "blocked_p", "all"),
    _spec("3AVB", "Complete AV block", "record", "all"),
    _spec("WPW", "Wolff-Parkinson-White pattern", "delta", chronic=True),
    # intraventricular conduction
    _spec("IRBBB", "Incomplete right bundle branch block", "qrs", chronic=True),
    _spec("CRBBB", "Right bundle branch block", "qrs st_t", chronic=True),
    _spec("ILBBB", "Incomplete left bundle branch block", "qrs", chronic=True),
    _spec("CLBBB", "Left bundle branch block", "qrs st_t", chronic=True),
    _spec("LAFB", "Left anterior fascicular block", "qrs", chronic=True),
    _spec("LPFB", "Left posterior fascicular block", "qrs", chronic=True),
    _spec("IVCD", "Nonspecific intraventricular conduction delay", "qrs", chronic=True),
    # hypertrophy, atrial overload, voltage
    _spec("LVH", "Left ventricular hypertrophy", "qrs st_t", chronic=True),
    _spec("VCLVH", "Minimal voltage criteria for LVH, may be normal variant", "qrs", chronic=True),
    _spec("HVOLT", "High QRS voltage", "qrs", chronic=True),
    _spec("RVH", "Right ventricular hypertrophy", "qrs st_t", chronic=True),
    _spec("SEHYP", "Septal hypertrophy", "qrs_early", chronic=True),
    _spec("LAO/LAE", "Left atrial abnormality", "p", chronic=True),
    _spec("RAO/RAE", "Right atrial abnormality", "p", chronic=True),
    _spec("LVOLT", "Low QRS voltages in limb leads", "qrs", chronic=True),
    # infarction (Q waves, smaller R and T changes facing the territory)
    _spec("IMI", "Inferior infarct - age undetermined", "qrs t", chronic=True),
    _spec("ASMI", "Anteroseptal infarct - age undetermined", "qrs t", chronic=True),
    _spec("AMI", "Anterior infarct - age undetermined", "qrs t", chronic=True),
    _spec("ALMI", "Anterolateral infarct - age undetermined", "qrs t", chronic=True),
    _spec("LMI", "Lateral infarct - age undetermined", "qrs t", chronic=True),
    _spec("ILMI", "Inferolateral infarct - age undetermined", "qrs t", chronic=True),
    _spec("IPLMI", "Inferoposterolateral infarct - age undetermined", "qrs t", chronic=True),
    _spec("IPMI", "Inferior/posterior infarct - age undetermined", "qrs t", chronic=True),
    _spec("PMI", "Posterior infarct - age undetermined", "qrs t", chronic=True),
    _spec("QWAVE", "Q waves present", "qrs", chronic=True),
    # injury: ST elevation in the territory's leads
    _spec("INJAS", "Anteroseptal injury pattern", "st_t"),
    _spec("INJAL", "Anterolateral injury pattern", "st_t"),
    _spec("INJIN", "Inferior injury pattern", "st_t"),
    _spec("INJLA", "Lateral injury pattern", "st_t"),
    _spec("INJIL", "Inferolateral injury pattern", "st_t"),
    _spec("ANEUR", "ST elevation, consider ventricular aneurysm", "qrs_early st_t", chronic=True),
    _spec("STE_", "ST elevation", "st_t"),
    # ischaemia: ST depression and T inversion in the territory's leads
    _spec("ISC_", "ST depression, consider ischemia", "st_t"),
    _spec("ISCAL", "Anterolateral ischemia", "st_t"),
    _spec("ISCAS", "Anteroseptal ischemia", "st_t"),
    _spec("ISCIL", "Inferolateral ischemia", "st_t"),
    _spec("ISCIN", "Inferior ischemia", "st_t"),
    _spec("ISCLA", "Lateral ischemia", "st_t"),
    _spec("ISCAN", "Anterior ischemia", "st_t"),
    # other ST-T
    _spec("STD_", "Nonspecific ST depression", "st_t"),
    _spec("NST_", "Nonspecific ST abnormality", "st_t"),
    _spec("NDT", "Nonspecific T wave abnormality", "t"),
    _spec("NT_", "T wave changes, nonspecific", "t"),
    _spec("TAB_", "T wave abnormality", "t"),
    _spec("INVT", "T wave inversion", "t"),
    _spec("LOWT", "Low amplitude T waves", "t"),
    _spec("DIG", "Digitalis effect", "st_t"),
    _spec("LNGQT", "Prolonged QT interval", "st_t", "all", chronic=True),
    _spec("EL", "Consider electrolyte abnormality", "t"),
    _spec("ABQRS", "Abnormal QRS", "qrs", chronic=True),
    _spec("NORM", "Normal ECG", ""),
)

CATALOGUE: dict[str, LabelSpec] = {spec.code: spec for spec in _SPECS}
SUPPORTED_CODES: tuple[str, ...] = tuple(CATALOGUE)

# Exactly one primary rhythm per record; when a combination states several, the first in this order
# wins (PSVT may keep SVTAC: a paroxysm is a supraventricular tachycardia).
PRIMARY_RHYTHMS = ("PACE", "AFLT", "AFIB", "PSVT", "SVTAC", "SVARR", "STACH", "SBRAD", "SARRH", "SR")
SINUS_RHYTHMS = ("SR", "SBRAD", "STACH", "SARRH", "SVARR")
# Findings that need conducted sinus P waves: meaningless under fibrillation, flutter, SVT or pacing.
NEEDS_SINUS_P = ("1AVB", "LPR", "2AVB", "3AVB", "WPW", "PAC", "LAO/LAE", "RAO/RAE")
# Findings about the intrinsic QRS that a ventricular paced rhythm replaces.
HIDDEN_BY_PACING = (
    "CLBBB", "CRBBB", "ILBBB", "IRBBB", "IVCD", "LAFB", "LPFB", "WPW", "LVH", "VCLVH", "HVOLT", "RVH",
    "SEHYP", "ABQRS", "QWAVE", "IMI", "ASMI", "AMI", "ALMI", "LMI", "ILMI", "IPLMI", "IPMI", "PMI", "ANEUR",
)  # fmt: skip
# (winner, losers): physiologically incompatible statements; the rarer or more specific one wins.
EXCLUSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("3AVB", ("2AVB", "1AVB", "LPR", "WPW")),
    ("2AVB", ("1AVB", "LPR", "WPW")),
    ("WPW", ("1AVB", "LPR", "CLBBB", "CRBBB", "ILBBB", "IRBBB", "IVCD", "LAFB", "LPFB")),
    ("CLBBB", ("CRBBB", "ILBBB", "IRBBB", "IVCD", "LAFB", "LPFB")),
    ("CRBBB", ("ILBBB", "IRBBB", "IVCD")),
    ("ILBBB", ("IRBBB", "IVCD")),
    ("IRBBB", ("IVCD",)),
    ("LPFB", ("LAFB",)),
    ("RVH", ("LAFB",)),
    ("LVOLT", ("LVH", "VCLVH", "HVOLT")),
    ("BIGU", ("TRIGU",)),
    ("LNGQT", ("DIG",)),
    ("EL", ("LOWT",)),
)


def statement_for(code: str) -> str:
    return CATALOGUE[code].mimic_statement


def check_codes(codes: Iterable[str], where: str) -> None:
    """Raise ValueError naming the first code that is not an SCP-ECG statement the generator knows."""
    for code in codes:
        if code not in CATALOGUE:
            raise ValueError(
                f"{where}: unknown label {code!r}; expected one of the 71 SCP-ECG codes {list(CATALOGUE)}"
            )


def resolve(codes: Iterable[str]) -> frozenset[str]:
    """A physiologically coherent label set: one primary rhythm (SR when none is stated), no finding
    that the rhythm makes impossible, no pair of mutually exclusive findings."""
    labels = set(codes)
    check_codes(labels, "label set")
    stated = [r for r in PRIMARY_RHYTHMS if r in labels]
    primary = stated[0] if stated else "SR"
    labels -= set(PRIMARY_RHYTHMS)
    labels.add(primary)
    if primary == "PSVT" and "SVTAC" in stated:
        labels.add("SVTAC")
    if primary not in SINUS_RHYTHMS:
        labels -= set(NEEDS_SINUS_P)
    if primary == "PACE":
        labels -= set(HIDDEN_BY_PACING)
    for winner, losers in EXCLUSIONS:
        if winner in labels:
            labels -= set(losers)
    return frozenset(labels)


def primary_rhythm(labels: Iterable[str]) -> str:
    present = set(labels)
    return next(r for r in PRIMARY_RHYTHMS if r in present)
