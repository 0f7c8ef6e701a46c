"""Synthetic cardiac MRI archive: DICOM studies, RIS reports, ground truth and planted faults.

Entry point: :func:`phantom.archive.synthesize`.
"""
