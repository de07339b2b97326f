"""The floor: the least a Django/DRF/Celery endpoint can do for the same request (bench only)."""
