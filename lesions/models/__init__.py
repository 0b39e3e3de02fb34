"""Lesion registry, ultrasound measurements and STS injections (DICOM files follow in issue #6)."""

from lesions.models.lesion import AnatomicalSite, Digit, Laterality, Lesion, Phalanx
from lesions.models.ultrasound import (
    DepthNotMeasurableReason,
    DopplerSignal,
    ImmediateComplication,
    Injection,
    NeedleGauge,
    UltrasoundMeasurement,
)

__all__ = [
    "AnatomicalSite",
    "DepthNotMeasurableReason",
    "Digit",
    "DopplerSignal",
    "ImmediateComplication",
    "Injection",
    "Laterality",
    "Lesion",
    "NeedleGauge",
    "Phalanx",
    "UltrasoundMeasurement",
]
