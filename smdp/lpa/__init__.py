"""The test LPA: ES9+ client (es9client), the LPA side of ES10 (es10) and the download flow (download)."""
