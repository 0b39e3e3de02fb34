"""Lesion registry, ultrasound measurements, injections, DICOM files (issues #4, #6)."""
