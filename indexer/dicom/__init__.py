"""Reading DICOM: headers, assembling frames into ordered series, view classification, pixels."""
