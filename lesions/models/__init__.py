"""Lesion registry, ultrasound measurements, STS injections and ultrasound DICOM files."""

from lesions.models.dicom import DicomFile, DicomStatus, PixelReview
from lesions.models.lesion import AnatomicalSite, Digit, Laterality, Lesion, Phalanx
from lesions.models.ultrasound import (
    DepthNotMeasurableReason,
    DopplerSignal,
    ImmediateComplication,
    Injection,
    MeasurementSource,
    NeedleGauge,
    UltrasoundMeasurement,
)

__all__ = [
    "AnatomicalSite",
    "DepthNotMeasurableReason",
    "DicomFile",
    "DicomStatus",
    "PixelReview",
    "Digit",
    "DopplerSignal",
    "ImmediateComplication",
    "Injection",
    "Laterality",
    "Lesion",
    "MeasurementSource",
    "NeedleGauge",
    "Phalanx",
    "UltrasoundMeasurement",
]
