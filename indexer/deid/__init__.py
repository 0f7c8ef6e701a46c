"""De-identification of DICOM headers and report text (PS3.15 basic profile, our options)."""
