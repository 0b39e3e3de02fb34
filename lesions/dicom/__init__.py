"""Ultrasound DICOM: reading, de-identification, previews and calibration (issue #6)."""
