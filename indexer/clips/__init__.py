"""Pixels to clips: normalise, resample, find the heart and crop around it; preview pictures of clips."""
