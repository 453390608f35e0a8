"""Preprocessing: landmarks, apex spotting, aligned crops, optical flow and their report (DAG stages
detect_landmarks, spot_apex, crop_faces, compute_flow, report_preprocessing)."""
